# Two commands from nothing: `make demo` and `make test`. Everything they need is
# installed here, into .venv, with the dev pins of constraints-dev.txt.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.edgeguard-installed
NVCC   := $(shell command -v nvcc 2>/dev/null)
PIP_FLAGS := -q --disable-pip-version-check -c constraints-dev.txt
BENCHES := attacks purify kernels eigenguard scan stream

.PHONY: demo demo-weights test test-all wheel-check cross-aarch64 cuda clean help $(addprefix bench-,$(BENCHES))

help:
	@echo "make demo      set up .venv and run the demo (prints metrics, writes demo.png)"
	@echo "make demo-weights  retrain the demo's shipped weights from nothing (~55 min on 2 cores) and rewrite them"
	@echo "make test      set up .venv, build the CUDA kernels if nvcc is present, run the test suite"
	@echo "make test-all  the suite including tests marked slow"
	@echo "make wheel-check  sdist -> wheel -> clean venv -> the torch-free tests (needs PyPI)"
	@echo "make cross-aarch64  the C kernels compiled for aarch64 (Jetson), warnings as errors"
	@echo "make cuda      compile only libedgeguard_cuda into build-cuda/ (needs nvcc; the install builds it too)"

# One build (CMakeLists.txt through scikit-build-core) makes the C kernels and, where nvcc is
# found, the CUDA library and its wrapper edgeguard._cuda, with CUDA warnings as errors.
$(STAMP): pyproject.toml CMakeLists.txt constraints-dev.txt $(wildcard csrc/*.pyx csrc/*.c csrc/*.h csrc/*.cu)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(PIP_FLAGS) --upgrade pip "scikit-build-core>=0.11" "Cython>=3.0"
	$(PIP) install $(PIP_FLAGS) --no-build-isolation -Ccmake.define.EDGEGUARD_WERROR=ON -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m edgeguard demo --out demo.png

# The weights in edgeguard/weights/, retrained in an empty cache so nothing earlier is reused.
demo-weights: $(STAMP)
	tmp=$$(mktemp -d) && EDGEGUARD_CACHE=$$tmp $(PY) -m edgeguard.bench.shipped --write; status=$$?; rm -rf $$tmp; exit $$status

cuda:
ifdef NVCC
	cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DEDGEGUARD_WERROR=ON >/dev/null
	cmake --build build-cuda -j 2
else
	@echo "nvcc not found: skipping the CUDA kernels"
endif

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q

# The package as a user gets it: a wheel built from the sdist, installed into a clean venv.
wheel-check:
	.ci/wheel_check

cross-aarch64:
	.ci/cross_aarch64

# make bench-NAME runs benchmarks/NAME.py (full run) into benchmarks/results/NAME.json.
$(addprefix bench-,$(BENCHES)): bench-%: $(STAMP)
	$(PY) -m benchmarks.$* --json benchmarks/results/$*.json

clean:
	rm -rf build build-cuda *.egg-info edgeguard/*.so $(STAMP)
