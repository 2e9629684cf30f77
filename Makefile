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

.PHONY: all build build-cuda test unit race lint fmt vet staticcheck demo bench soak sim bench-coordinator fuzz deps clean

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

# The protocol simulation alone: 2,000 seeds and the scenario scripts (also
# part of `unit` and `race`). A failing seed prints its reproduction command.
sim:
	$(GO) test -count=1 -timeout 20m -run 'TestSim|TestScenarios' ./coordinator/sim

# 100,000 simulation seeds (and 300 with up to 1024 ranks).
soak:
	$(GO) test -count=1 -timeout 120m -run 'Soak' -tags soak ./coordinator/... ./rank/...

# The coordinator's cost per epoch and per heartbeat round up to 65,536 ranks.
bench-coordinator:
	$(GO) test -count=1 -run '^$$' -bench BenchmarkCoordinator -benchtime 10x ./coordinator

clean:
	rm -rf $(BIN) bench-results demo-store
