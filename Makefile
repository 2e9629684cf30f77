# cutpoint: build, test, demo, bench. `make test` is what CI runs (.ci/run).
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

GO        ?= go
BIN       := bin
PKGS      := ./...
# Protocol and storage packages run under the race detector in `make test`.
RACE_PKGS := ./coordinator/... ./rank/... ./ckpt/...
STATICCHECK_VERSION := v0.8.2

.PHONY: all build build-cuda test unit race lint fmt vet staticcheck demo bench bench-ckpt soak fuzz fuzz-ckpt deps clean

all: build

build:
	$(GO) build -o $(BIN)/cutpoint ./cmd/cutpoint

# The CUDA build links gorgonia.org/cu; it needs cuda.h and libcuda.so to link
# (scripts/cuda-headers.sh fetches them) and a GPU to run.
build-cuda:
	source scripts/cuda-env.sh && $(GO) build -tags cuda -o $(BIN)/cutpoint-cuda ./cmd/cutpoint

deps:
	scripts/deps.sh

test: deps lint unit race
	@echo "make test: all checks passed"

unit:
	$(GO) test -count=1 -timeout 20m $(PKGS)

race:
	$(GO) test -count=1 -race -timeout 20m $(RACE_PKGS)

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	staticcheck $(PKGS)

demo: build
	scripts/demo.sh

bench: build
	$(BIN)/cutpoint bench --out bench-results

soak:
	$(GO) test -count=1 -timeout 120m -run 'Soak' -tags soak ./coordinator/... ./rank/...

# Storage-engine benchmarks (docs/benchmarks.md, "Storage engine"): 1 GiB per
# data set for the record; BENCH_SIZE=33554432 for a quick look.
BENCH_SIZE ?= 1073741824
bench-ckpt:
	CUTPOINT_BENCH_SIZE=$(BENCH_SIZE) $(GO) test -run '^$$' -bench . -benchtime 3x -timeout 60m ./ckpt

# Short fuzzing of every storage-engine decoder and of the shuffle kernels,
# FUZZTIME per target; the seed corpora under testdata/fuzz run in `make unit`.
FUZZTIME ?= 10s
FUZZ_CKPT_PKGS := ./ckpt ./ckpt/backend ./kernels/shuffle
fuzz-ckpt:
	@for p in $(FUZZ_CKPT_PKGS); do \
	  for t in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
	    echo "fuzz $$p $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
	  done; \
	done

clean:
	rm -rf $(BIN) bench-results demo-store
