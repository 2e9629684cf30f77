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

.PHONY: all lib lib-cuda build build-cuda cuda-check gpu-test-bin ptx test unit flushkill-test race lint fmt vet staticcheck demo bench bench-quick goals soak soak-ci fuzz deps clean bench-ckpt fuzz-ckpt sim plants bench-coordinator slurm-test multinode-test multinode-test-ci multinode-slurm-test multinode-measure-load

all: build

build:
	$(GO) build -o $(BIN)/cutpoint ./cmd/cutpoint

# lib: libcutpoint, the rank library for C, C++, Fortran and Python jobs
# (cmd/libcutpoint): shared library, static archive and the hand-written
# header (cutpoint.h) and Fortran module source (cutpoint.f90) in $(LIB).
# Needs cgo (gcc). Its tests (C, Python and Fortran jobs under cutpoint run)
# are part of `unit`: go test ./cmd/libcutpoint.
LIB := $(BIN)/lib
lib:
	mkdir -p $(LIB)
	$(GO) build -buildmode=c-shared -o $(LIB)/libcutpoint.so ./cmd/libcutpoint
	$(GO) build -buildmode=c-archive -o $(LIB)/libcutpoint.a ./cmd/libcutpoint
	rm -f $(LIB)/libcutpoint.h   # cgo's generated header; cutpoint.h is the interface
	cp cmd/libcutpoint/include/cutpoint.h cmd/libcutpoint/include/cutpoint.f90 $(LIB)/
	@echo "libcutpoint in $(LIB): cc job.c -I$(LIB) -L$(LIB) -lcutpoint (or $(LIB)/libcutpoint.a -lpthread -lm)"

# lib-cuda: libcutpoint with the CUDA device (cutpoint_protect_cuda wraps
# the job's device memory) in $(LIB)-cuda; like build-cuda it needs
# scripts/cuda-headers.sh to link and a GPU to run.
lib-cuda:
	mkdir -p $(LIB)-cuda
	source scripts/cuda-env.sh && $(GO) build -tags cuda -buildmode=c-shared -o $(LIB)-cuda/libcutpoint.so ./cmd/libcutpoint
	rm -f $(LIB)-cuda/libcutpoint.h
	cp cmd/libcutpoint/include/cutpoint.h cmd/libcutpoint/include/cutpoint.f90 $(LIB)-cuda/

# The CUDA build links gorgonia.org/cu; it needs cuda.h and libcuda.so to link
# (scripts/cuda-headers.sh fetches them) and a GPU to run.
build-cuda:
	source scripts/cuda-env.sh && $(GO) build -tags cuda -o $(BIN)/cutpoint-cuda ./cmd/cutpoint

# Packages whose tests need a GPU (cuda-tagged; built here, run on a GPU node).
GPU_TEST_PKGS := ./kernels/cuda
GPU_BIN       := $(BIN)/gpu

# cuda-check: what CI can check of the CUDA build without a GPU (after
# scripts/cuda-headers.sh): vet, build and staticcheck with -tags cuda, the
# GPU test binaries compile, and the committed PTX matches kernels.cu (when
# clang-16 or nvcc is installed; skipped with a message otherwise).
cuda-check:
	source scripts/cuda-env.sh && $(GO) vet -tags cuda $(PKGS)
	source scripts/cuda-env.sh && $(GO) build -tags cuda $(PKGS)
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	source scripts/cuda-env.sh && staticcheck -tags cuda ./kernels/... ./cmd/...
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && source scripts/cuda-env.sh && \
	for p in $(GPU_TEST_PKGS); do $(GO) test -c -tags cuda -o "$$tmp/" $$p; done
	kernels/cuda/genptx.sh -check

# gpu-test-bin: the GPU test binaries, a cuda cutpoint binary and run.sh in
# $(GPU_BIN); copy the folder to a GPU machine and run run.sh there.
gpu-test-bin:
	rm -rf $(GPU_BIN) && mkdir -p $(GPU_BIN)
	source scripts/cuda-env.sh && for p in $(GPU_TEST_PKGS); do \
		name=$$(echo "$${p#./}" | tr / -); \
		$(GO) test -c -tags cuda -o $(GPU_BIN)/$$name.test $$p; done
	source scripts/cuda-env.sh && $(GO) build -tags cuda -o $(GPU_BIN)/cutpoint-cuda ./cmd/cutpoint
	cp scripts/gpu-run.sh $(GPU_BIN)/run.sh
	@echo "GPU binaries in $(GPU_BIN): copy it to a GPU machine and run $(GPU_BIN)/run.sh there"

# ptx: regenerate kernels/cuda/kernels.ptx from kernels.cu (clang-16 or nvcc).
ptx:
	$(GO) generate -tags cuda ./kernels/cuda

deps:
	scripts/deps.sh

# test is what CI runs (.ci/run): lint, every package's tests (the protocol
# simulation's 2,000 seeds, the end-to-end runs with SIGKILLs), the planted
# transport bugs the simulation must catch, the protocol
# and storage packages again under the race detector, the CUDA build checked
# without a GPU, bounded soaks, Slurm (one node) and the multi-host bed
# (its cases, then real Slurm on its three hosts).
test: deps lint unit plants race cuda-check soak-ci slurm-test multinode-test-ci multinode-slurm-test
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

# The whole table of TestLevelsFlushKill: a rank SIGKILLed at every step
# of a background and of the final flush, 14 jobs, 1.5 to 4 minutes on two
# cores (make unit runs 6 of them).
flushkill-test:
	CUTPOINT_FLUSHKILL=all $(GO) test -count=1 -timeout 20m -run 'TestLevelsFlushKill$$' ./cmd/cutpoint

demo: build
	scripts/demo.sh

# The benchmark harness (package bench): a full run takes about an hour on
# two cores (10 pairs of every job variant, in a seeded random order; it
# took 13 to 15 minutes with 3) and writes several GiB under bench-results/ (the largest
# scenario holds 4 GiB of state); results.json,
# results.md and the plots land there. BENCH_FLAGS adds flags, e.g.
# BENCH_FLAGS='--doc docs/benchmarks.md' to regenerate the Harness section.
BENCH_FLAGS ?=
bench: build
	$(BIN)/cutpoint bench --out bench-results $(BENCH_FLAGS)

# The quick plan (under two minutes on two cores); `make unit` runs it too,
# as TestQuick in ./bench (skipped with -short).
bench-quick: build
	$(BIN)/cutpoint bench --quick --out bench-results-quick $(BENCH_FLAGS)

# The "Where the goals stand" table of docs/benchmarks.md, made from the
# committed raw results under docs/bench (their *.goals.json);
# TestGoalTableCommitted in ./bench (part of unit) fails while it differs.
goals:
	$(GO) run ./cmd/cutpoint bench goals --doc docs/benchmarks.md --dir docs/bench

# The protocol simulations alone: the whole stack's 2,000 seeds and scenario
# scripts (part of `unit`), the transport channel machine's 2,000 seeds
# (part of `unit` and `race`), and the planted transport bugs. A failing
# seed prints its reproduction command.
sim: plants
	$(GO) test -count=1 -timeout 20m -run 'TestSim|TestScenarios' ./sim
	$(GO) test -count=1 -timeout 20m -run 'TestSim' ./rank/transport/channel

# plants: each transport bug of channel.Plant, planted in turn (build tag
# cutpoint_plant), must make the whole-stack simulation fail within the
# 2,000 seeds; the test fails if one goes unnoticed, and logs the seed that
# caught each.
plants:
	$(GO) test -count=1 -timeout 10m -tags cutpoint_plant -run 'TestPlants' -v ./sim

# soak: 100,000 simulation seeds (and 300 with up to 1024 ranks), 50,000
# seeds of the transport channel machine's simulation, the
# transport under every fault at once (CUTPOINT_SOAK_DURATION, default in the
# test), and 50 end-to-end jobs with random SIGKILLs (CUTPOINT_E2E_ROUNDS).
soak:
	$(GO) test -count=1 -timeout 180m -run 'Soak' -tags soak ./sim ./coordinator/... ./rank/... ./cmd/cutpoint

# soak-ci: the same soaks with bounded counts, for CI.
SOAK_CI_SEEDS ?= 5000
soak-ci:
	$(GO) test -count=1 -timeout 30m -run 'Soak' -tags soak ./sim -first=2001 -seeds=$(SOAK_CI_SEEDS) -large-seeds=20
	CUTPOINT_SOAK_DURATION=20s $(GO) test -count=1 -timeout 10m -run 'Soak' -tags soak ./rank/transport
	CUTPOINT_E2E_ROUNDS=8 $(GO) test -count=1 -timeout 20m -run 'Soak' -tags soak ./cmd/cutpoint

# Storage-engine benchmarks (docs/benchmarks.md, "Storage engine"): 1 GiB per
# data set for the record; BENCH_SIZE=33554432 for a quick look.
BENCH_SIZE ?= 1073741824
bench-ckpt:
	CUTPOINT_BENCH_SIZE=$(BENCH_SIZE) $(GO) test -run '^$$' -bench . -benchtime 3x -timeout 60m ./ckpt

# fuzz: a short run of every fuzz target (FUZZTIME each); the seed corpora
# under testdata/fuzz also run in `make unit`.
FUZZ_PKGS := ./ckpt ./ckpt/backend ./kernels/shuffle ./internal/wire ./internal/jobstats ./internal/launch ./rank/transport/channel ./rank/participant ./coordinator ./internal/levels ./rank
fuzz:
	@for p in $(FUZZ_PKGS); do \
	  for t in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
	    echo "fuzz $$p $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
	  done; \
	done

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

# The coordinator's cost per epoch and per heartbeat round up to 65,536 ranks.
bench-coordinator:
	$(GO) test -count=1 -run '^$$' -bench BenchmarkCoordinator -benchtime 10x ./coordinator

# The Slurm integration against real daemons on localhost (as root: it
# installs and starts munged, slurmctld and slurmd; slurm/ci/start-slurm.sh),
# a few minutes; slurm/test.sh lists the cases.
slurm-test:
	bash slurm/test.sh

# The multi-host bed (as root; scripts/multinode/bed.sh): three network
# namespaces on a private bridge, one `cutpoint nats` cluster server each,
# the job spread over them; cases cluster, kill (two of the three servers
# SIGKILLed mid-run), hostloss, partition, standby (the coordinator's host
# killed whole, a standby coordinator takes over), load (busy loops on
# every core, default failure timeout: no false loss), levels and
# levels-rs (node-local level with a partner copy / rs:2+1 fragments, a
# host killed whole and its node-local directory wiped: recovery reads no
# byte from the shared store) and measure (NATS bytes per step per server,
# ranks packed vs spread). Skips without root or iproute2. Each case is
# under a minute on two cores; multinode-test-ci (part of `make test`)
# runs all but measure (MULTINODE_CASES=... picks some).
# multinode-measure-load runs the load case for MULTINODE_LOAD_SECONDS (15
# min) and appends false losses per hour to MULTINODE_OUT
# (docs/benchmarks.md).
MULTINODE_STEPS ?= 6000
MULTINODE_LOAD_SECONDS ?= 900
MULTINODE_OUT ?= bench-results/multinode
multinode-test: build
	MULTINODE_STEPS=$(MULTINODE_STEPS) scripts/multinode/test.sh

MULTINODE_CI_CASES := cluster kill hostloss partition standby standby-moved load levels levels-rs
multinode-test-ci: build
	MULTINODE_CASES="$(or $(MULTINODE_CASES),$(MULTINODE_CI_CASES))" MULTINODE_STEPS=$(MULTINODE_STEPS) timeout 480 scripts/multinode/test.sh

multinode-measure-load: build
	MULTINODE_CASES=measure-load MULTINODE_LOAD_SECONDS=$(MULTINODE_LOAD_SECONDS) MULTINODE_OUT=$(abspath $(MULTINODE_OUT)) scripts/multinode/test.sh

# Real Slurm on the bed (as root; scripts/multinode/slurm.sh): slurmctld
# and munged in a controller namespace, one slurmd per bed host under its
# own hostname, all with a private config, key, socket and state; then
# slurm/cutpoint.sbatch -N 3 (one NATS server per node), undisturbed and
# with one node killed whole mid-job, the same with node-local levels
# (--local, --redundancy partner; the dead node's directory wiped), and
# with the batch host killed whole (requeued, restored from the latest cut)
# (scripts/multinode/slurm-test.sh). 3 minutes on two cores (load about
# 4); skips without
# root or network namespaces.
multinode-slurm-test: build
	timeout 480 scripts/multinode/slurm-test.sh

clean:
	rm -rf $(BIN) bench-results bench-results-quick demo-store
