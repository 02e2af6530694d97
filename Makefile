# dplb's doors: `make demo`, `make test`, `make bench`, `make lint`. Each installs what
# it needs first (Debian packages, a virtual environment, the build).

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMPS := build/.stamps
CPP_TEST_DIR := build/cpp-tests
BENCH_DIR := build/bench
CPP_SOURCES := $(shell find cpp -name '*.cpp' -o -name '*.hpp') CMakeLists.txt pyproject.toml

.PHONY: all deps build test test-cpp test-asan test-tsan test-python test-ansible lint bench bench-deps bench-build bench-engine \
    fuzz fuzz-build bench-fuzz \
    bench-sync bench-runtime bench-e2e bench-apply bench-scrape bench-cluster bench-health bench-bgp demo clean

all: build

$(STAMPS)/apt: scripts/install-deps.sh
	@mkdir -p $(STAMPS)
	scripts/install-deps.sh
	@touch $@

# What the venv holds: the build backend (the package builds without isolation, so an
# edit rebuilds only what changed), the package's dependencies, and test and lint tools.
VENV_PACKAGES := "scikit-build-core>=0.10" "pybind11>=2.12" \
    "pydantic>=2.6" "pyyaml>=6" "fastapi>=0.110" "uvicorn>=0.29" "httpx>=0.27" \
    "prometheus-client>=0.20" "aetcd>=1.0" "pytest>=8" "hypothesis>=6.100" "scapy>=2.5" "playwright>=1.40" \
    "schemathesis>=4,<5" "ruff>=0.5" "mypy>=1.10" types-PyYAML \
    "ansible-core>=2.16" "ansible-lint>=24"

$(STAMPS)/venv: pyproject.toml Makefile $(STAMPS)/apt
	@mkdir -p $(STAMPS)
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q $(VENV_PACKAGES)
	@touch $@

deps: $(STAMPS)/venv

# The editable install maps each Python file by name: a module added or removed needs a
# new install. This list changes only then, not on every edit.
PY_MODULES := $(STAMPS)/python-modules
$(shell mkdir -p $(STAMPS); find python -name '*.py' | sort > $(PY_MODULES).new; \
    cmp -s $(PY_MODULES).new $(PY_MODULES) || mv $(PY_MODULES).new $(PY_MODULES); rm -f $(PY_MODULES).new)

# The Python package with its C++ module, installed editable into the venv; rebuilt
# when any C++ source changes or a Python module comes or goes.
$(STAMPS)/build: $(STAMPS)/venv $(CPP_SOURCES) $(PY_MODULES)
	$(VPY) -m pip install -q --no-build-isolation -e .
	@touch $@

build: $(STAMPS)/build

# The fuzz targets' seed corpus is written by scripts/fuzz_seeds.py with the venv's scapy.
FUZZ_SEEDS_PY := -DDPLB_FUZZ_SEED_PYTHON=$(abspath $(VPY))

test-cpp: $(STAMPS)/apt $(STAMPS)/venv
	cmake -S . -B $(CPP_TEST_DIR) -G Ninja -DDPLB_BUILD_TESTS=ON -DDPLB_BUILD_PYTHON=OFF $(FUZZ_SEEDS_PY) \
	    -DDPLB_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(CPP_TEST_DIR)
	cd $(CPP_TEST_DIR) && ctest --output-on-failure

# The same C++ tests under sanitizers (-O1, no DPDK runtime: ctest does not use it): ASan
# with UBSan, then TSan. A finding fails the run (halt_on_error, UBSan does not recover).
SANITIZER_ENV_asan := ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
SANITIZER_ENV_tsan := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
SANITIZE_asan := address,undefined
SANITIZE_tsan := thread

test-asan test-tsan: test-%: $(STAMPS)/apt $(STAMPS)/venv
	cmake -S . -B build/$* -G Ninja -DDPLB_BUILD_TESTS=ON -DDPLB_BUILD_PYTHON=OFF -DDPLB_WITH_DPDK=OFF $(FUZZ_SEEDS_PY) \
	    -DDPLB_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDPLB_SANITIZE=$(SANITIZE_$*)
	$(SANITIZER_ENV_$*) cmake --build build/$*
	cd build/$* && $(SANITIZER_ENV_$*) ctest --output-on-failure -j2

# tests/cluster in a process of its own: its in-process etcd clients leave gRPC's threads
# behind, and an in-process DPDK runtime (tests/contract) started beside them crashed.
test-python: $(STAMPS)/build
	$(VPY) -m pytest tests --ignore=tests/cluster --ignore=tests/ansible $(PYTEST_ARGS)
	$(VPY) -m pytest tests/cluster $(PYTEST_ARGS)

# The Ansible roles (ansible/, roles/): the hardware roles against a fake sysfs tree,
# site.yml against booted Debian 12 containers (systemd-nspawn, rootfs cached in
# /var/cache/dplb-test; needs root), with the wheels pip builds from `make build`'s tree.
test-ansible: $(STAMPS)/build
	ANSIBLE_CONFIG=$(abspath ansible.cfg) $(VPY) -m pytest tests/ansible $(PYTEST_ARGS)

test: test-cpp test-asan test-tsan test-python test-ansible

lint: $(STAMPS)/build
	$(VENV)/bin/ruff check python tests bench
	$(VENV)/bin/ruff format --check python tests bench
	$(VENV)/bin/mypy
	ANSIBLE_CONFIG=$(abspath ansible.cfg) $(VENV)/bin/ansible-lint ansible roles inventory
	cmake -S . -B build/lint -G Ninja -DDPLB_BUILD_TESTS=ON -DDPLB_BUILD_BENCH=ON -DDPLB_WERROR=ON $(FUZZ_SEEDS_PY) \
	    -DPython_EXECUTABLE=$(abspath $(VPY)) -Dpybind11_DIR=$$($(VPY) -m pybind11 --cmakedir)
	cmake --build build/lint

# Coverage-guided fuzzing (libFuzzer, clang-14 from Debian, with ASan and UBSan): each
# target of cpp/fuzz runs FUZZ_SECONDS from its seeds (scripts/fuzz_seeds.py) and the
# corpus it grew before (build/fuzz/corpus, kept between runs). A crash stops the run and
# leaves crash-* in build/fuzz/artifacts: copy it to cpp/fuzz/regressions/<target>/ once
# fixed, and the ctest builds replay it.
FUZZ_SECONDS ?= 60
FUZZ_DIR := build/fuzz
FUZZ_TARGETS := packet_parser engine
FUZZ_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

fuzz-build: $(STAMPS)/apt $(STAMPS)/venv
	cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DDPLB_FUZZ=ON \
	    -DDPLB_SANITIZE=address,undefined -DDPLB_BUILD_PYTHON=OFF -DDPLB_WITH_DPDK=OFF \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(FUZZ_DIR)
	$(VPY) scripts/fuzz_seeds.py --out $(FUZZ_DIR)/seeds

fuzz: fuzz-build
	@mkdir -p $(FUZZ_DIR)/artifacts
	for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	    $(FUZZ_ENV) $(FUZZ_DIR)/dplb_fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/seeds/$$t || exit 1; \
	done

# Benchmarks (not tests: nothing is asserted). Each prints a table and writes
# bench/results/<name>.json (machine, versions, date, load average, parameters, figures,
# aims) and a plot; bench/report.py draws the plots and puts bench/profiles.json's notes
# on missed aims. The machine is shared: each first waits (at most BENCH_WAIT s) for the
# 1-minute load average to fall below BENCH_LOAD, and records the load it ran under.
BENCH_LOAD ?= 0.7
BENCH_WAIT ?= 120
BENCH_QUIET = $(VPY) bench/wait_quiet.py --below $(BENCH_LOAD) --at-most $(BENCH_WAIT)

bench: bench-fuzz bench-engine bench-sync bench-runtime bench-e2e bench-apply bench-scrape bench-cluster bench-health bench-bgp

# What only the benchmarks need: wrk, iperf3, testpmd, the peers (Debian) and matplotlib
# for the plots (PyPI, into the venv; not a runtime dependency of dplb).
$(STAMPS)/bench-deps: scripts/install-deps.sh $(STAMPS)/venv
	scripts/install-deps.sh bench
	$(VPY) -m pip install -q "matplotlib>=3.6"
	@touch $@

bench-deps: $(STAMPS)/bench-deps

bench-build: $(STAMPS)/apt
	cmake -S . -B $(BENCH_DIR) -G Ninja -DDPLB_BUILD_BENCH=ON -DDPLB_BUILD_PYTHON=OFF \
	    -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BENCH_DIR)
	@mkdir -p bench/results

# The engine alone, one worker: 1k/100k/1M/10M sessions (10M takes ~2.5 GB), new sessions
# per second, bytes per session.
bench-engine: bench-build $(STAMPS)/bench-deps
	$(BENCH_QUIET)
	$(BENCH_DIR)/dplb_engine_bench --json bench/results/engine.json
	$(VPY) bench/report.py engine

# Session sync between two engines on loopback: a full sync of 1 million sessions (aim
# under 5 s) and what a peer misses under 1% datagram loss, before and after a refresh.
bench-sync: bench-build
	$(BENCH_QUIET)
	$(BENCH_DIR)/dplb_sync_bench --json bench/results/sync.json

# The fuzz targets, FUZZ_SECONDS each (bench/fuzz_bench.py): executions, exec/s,
# coverage (edges, features) and corpus size, into bench/results/fuzz.json.
bench-fuzz: fuzz-build
	@mkdir -p bench/results
	$(BENCH_QUIET)
	$(FUZZ_ENV) $(VPY) bench/fuzz_bench.py --build $(FUZZ_DIR) --seconds $(FUZZ_SECONDS) \
	    --json bench/results/fuzz.json $(FUZZ_TARGETS)

# dplb's worker loop through DPDK on net_ring ports beside dpdk-testpmd --forward-mode=macswap.
bench-runtime: bench-build $(STAMPS)/bench-deps
	$(BENCH_QUIET)
	$(BENCH_DIR)/dplb_runtime_bench --json bench/results/runtime.json
	$(VPY) bench/report.py runtime

# dplb, kernel full-NAT (nftables) and HAProxy in the namespace topology (root), ~3 min.
bench-e2e: $(STAMPS)/build $(STAMPS)/bench-deps
	$(BENCH_QUIET)
	$(VPY) bench/e2e_bench.py --json bench/results/e2e.json
	$(VPY) bench/report.py e2e

# Applying 1,000 services x 100 reals through the reconciler, with packets flowing.
bench-apply: $(STAMPS)/build
	@mkdir -p bench/results
	$(VPY) bench/apply_bench.py --json bench/results/apply.json

# Config propagation in a cluster: a real 3-member etcd and three harness nodes; a write
# on one node's API until applied on all (p50/p99), small and 1,000 x 100 configs.
bench-cluster: $(STAMPS)/build
	@mkdir -p bench/results
	$(BENCH_QUIET)
	$(VPY) bench/cluster_bench.py --json bench/results/cluster.json

# A /metrics scrape of 1,000 services x 10 reals on 2 workers (aim: under 50 ms).
bench-scrape: $(STAMPS)/build
	@mkdir -p bench/results
	$(VPY) bench/scrape_bench.py --json bench/results/scrape.json

# The health checker's cost: 10,000 reals checked over TCP every 5 s on loopback.
bench-health: $(STAMPS)/build
	@mkdir -p bench/results
	$(VPY) bench/health_bench.py --json bench/results/health.json

# BGP failover with two nodes behind a BIRD router (root, ~5 min): last real quiesced ->
# next hop gone at the router, kill -9 -> next hop gone (BFD); p50/p99 over 20 runs.
bench-bgp: $(STAMPS)/build
	$(BENCH_QUIET)
	$(VPY) bench/bgp_bench.py --json bench/results/bgp.json

# The node in network namespaces with live HTTP traffic (root); Ctrl-C stops it and
# removes the namespaces. `$(VPY) -m dplb.cli demo --harness`: the engine alone, no root.
# The cluster with session sync by default (issue 13); DEMO_ARGS= gives the one-node demo.
DEMO_ARGS ?= --cluster --sync
demo: $(STAMPS)/build
	$(VPY) -m dplb.cli demo $(DEMO_ARGS)

clean:
	rm -rf build $(VENV)
