# dplb's doors: `make demo`, `make test`, `make bench`, `make lint`. Each installs what
# it needs first (Debian packages, a virtual environment, the build).

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMPS := build/.stamps
CPP_TEST_DIR := build/cpp-tests
BENCH_DIR := build/bench
CPP_SOURCES := $(shell find cpp -name '*.cpp' -o -name '*.hpp') CMakeLists.txt pyproject.toml

.PHONY: all deps build test test-cpp test-python lint bench bench-apply bench-scrape demo clean

all: build

$(STAMPS)/apt: scripts/install-deps.sh
	@mkdir -p $(STAMPS)
	scripts/install-deps.sh
	@touch $@

# What the venv holds: the build backend (the package builds without isolation, so an
# edit rebuilds only what changed), the package's dependencies, and test and lint tools.
VENV_PACKAGES := "scikit-build-core>=0.10" "pybind11>=2.12" \
    "pydantic>=2.6" "pyyaml>=6" "fastapi>=0.110" "uvicorn>=0.29" "httpx>=0.27" \
    "prometheus-client>=0.20" "pytest>=8" "scapy>=2.5" "playwright>=1.40" \
    "ruff>=0.5" "mypy>=1.10" types-PyYAML

$(STAMPS)/venv: pyproject.toml Makefile $(STAMPS)/apt
	@mkdir -p $(STAMPS)
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q $(VENV_PACKAGES)
	@touch $@

deps: $(STAMPS)/venv

# The Python package with its C++ module, installed editable into the venv; rebuilt
# when any C++ source changes.
$(STAMPS)/build: $(STAMPS)/venv $(CPP_SOURCES)
	$(VPY) -m pip install -q --no-build-isolation -e .
	@touch $@

build: $(STAMPS)/build

test-cpp: $(STAMPS)/apt
	cmake -S . -B $(CPP_TEST_DIR) -G Ninja -DDPLB_BUILD_TESTS=ON -DDPLB_BUILD_PYTHON=OFF \
	    -DDPLB_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(CPP_TEST_DIR)
	cd $(CPP_TEST_DIR) && ctest --output-on-failure

test-python: $(STAMPS)/build
	$(VPY) -m pytest tests $(PYTEST_ARGS)

test: test-cpp test-python

lint: $(STAMPS)/build
	$(VENV)/bin/ruff check python tests bench
	$(VENV)/bin/ruff format --check python tests bench
	$(VENV)/bin/mypy
	cmake -S . -B build/lint -G Ninja -DDPLB_BUILD_TESTS=ON -DDPLB_BUILD_BENCH=ON -DDPLB_WERROR=ON \
	    -DPython_EXECUTABLE=$(abspath $(VPY)) -Dpybind11_DIR=$$($(VPY) -m pybind11 --cmakedir)
	cmake --build build/lint

bench: $(STAMPS)/apt
	cmake -S . -B $(BENCH_DIR) -G Ninja -DDPLB_BUILD_BENCH=ON -DDPLB_BUILD_PYTHON=OFF \
	    -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BENCH_DIR)
	@mkdir -p bench/results
	$(BENCH_DIR)/dplb_engine_bench --sessions 1000000 --json bench/results/engine.json
	$(MAKE) bench-apply
	$(MAKE) bench-scrape

# Applying 1,000 services x 100 reals through the reconciler, with packets flowing.
bench-apply: $(STAMPS)/build
	@mkdir -p bench/results
	$(VPY) bench/apply_bench.py --json bench/results/apply.json

# A /metrics scrape of 1,000 services x 10 reals on 2 workers (aim: under 50 ms).
bench-scrape: $(STAMPS)/build
	@mkdir -p bench/results
	$(VPY) bench/scrape_bench.py --json bench/results/scrape.json

# The node in network namespaces with live HTTP traffic (root); Ctrl-C stops it and
# removes the namespaces. `$(VPY) -m dplb.cli demo --harness`: the engine alone, no root.
demo: $(STAMPS)/build
	$(VPY) -m dplb.cli demo $(DEMO_ARGS)

clean:
	rm -rf build $(VENV)
