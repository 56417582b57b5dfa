# blindreader: `make demo` runs the demo study end to end, `make test` runs every check.
# Both create .venv and install what they need; nothing has to be installed by hand.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Without an NVIDIA GPU take the CPU build of torch first, so the project's range is already
# satisfied and pip does not pull several GB of CUDA packages.  Override to suit your machine,
# e.g. TORCH_CPU_PIP_ARGS="--index-url <your CPU wheel index>".
TORCH_CPU_SPEC ?= torch==2.13.0
TORCH_CPU_PIP_ARGS ?=
# Qt's wheel needs these; the xcb ones open a real window on a workstation's display.
QT_DEBS := libglib2.0-0 libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 \
  libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
  libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0
QT_LIBS := libglib-2.0.so.0 libGL.so.1 libEGL.so.1 libxkbcommon.so.0 libfontconfig.so.1 libdbus-1.so.3 \
  libxcb-cursor.so.0 libxcb-icccm.so.4 libxkbcommon-x11.so.0
# Tools no one here wrote that the tests check against (each test skips, saying why, without its
# tool): Xvfb for real windows, libfaketime, dicom3tools (dciodvfy), dcmtk (dcm2pnm), the ISMRMRD
# generator, R.
TEST_DEBS := xvfb xauth faketime dicom3tools dcmtk ismrmrd-tools r-base-core r-cran-psych r-cran-ordinal
DEMO_OUT ?= demo-output

.PHONY: demo test test-timeshift lint typecheck contracts pytest bench clean qt-libs test-tools

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.torch: | $(PY)
	@if $(PY) -c "import torch" 2>/dev/null; then \
	  echo "torch already installed"; \
	elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  echo "NVIDIA GPU found: torch with CUDA comes with the project's requirements"; \
	else \
	  echo "no NVIDIA GPU: installing the CPU build of torch ($(TORCH_CPU_SPEC))"; \
	  $(PIP) install --quiet $(TORCH_CPU_PIP_ARGS) "$(TORCH_CPU_SPEC)"; \
	fi
	@touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e .
	@touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.installed
	$(PIP) install --quiet -e ".[dev,postgres]"
	# fastMRI 0.3.0 is the reference implementation for equivalence tests and benchmarks; its
	# other requirements are ours already (its Lightning modules are not used).
	$(PIP) install --quiet --no-deps fastmri==0.3.0
	@touch $@

# The Qt wheel needs a few system libraries; install them when we are root, else say how.
qt-libs:
	@missing=""; for lib in $(QT_LIBS); do ldconfig -p | grep -q "$$lib" || missing="$$missing $$lib"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Qt's system libraries:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(QT_DEBS) >/dev/null; \
	  else \
	    echo "Qt needs system libraries that are missing:$$missing"; \
	    echo "install them with:  sudo apt-get install -y $(QT_DEBS)"; exit 1; \
	  fi; \
	fi

# The test tools: installed when we are root on Debian, else the tests that need them skip.
test-tools:
	@missing=""; for p in $(TEST_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing the test tools:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "test tools missing (their tests will skip):$$missing"; \
	    echo "install them with:  sudo apt-get install -y$$missing"; \
	  fi; \
	fi

demo: $(VENV)/.installed qt-libs
	$(VENV)/bin/blindreader demo --out $(DEMO_OUT)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

contracts: $(VENV)/.dev
	$(VENV)/bin/lint-imports

pytest: $(VENV)/.dev qt-libs test-tools
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

test: lint typecheck contracts pytest

# The whole pytest suite with the system clock a year ahead and 300 days back (libfaketime, with
# the shim in tests/tools/monotonic_sleep.c that keeps Python's sleeps working under it): no
# test may depend on today's date.
FAKETIME_LIB := /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
TIMESHIFTS ?= +400d -300d
test-timeshift: $(VENV)/.dev qt-libs test-tools
	@[ -e $(FAKETIME_LIB) ] || { echo "needs libfaketime: sudo apt-get install -y faketime"; exit 1; }
	cc -shared -fPIC -O2 -o $(VENV)/monotonic_sleep.so tests/tools/monotonic_sleep.c -ldl
	@for shift in $(TIMESHIFTS); do \
	  echo "== pytest with the system clock moved $$shift"; \
	  FAKETIME="$$shift" FAKETIME_DONT_FAKE_MONOTONIC=1 \
	  LD_PRELOAD="$(CURDIR)/$(VENV)/monotonic_sleep.so:$(FAKETIME_LIB)" \
	  QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider || exit 1; \
	done

bench: $(VENV)/.dev qt-libs
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest benchmarks -q --benchmark-enable

clean:
	rm -rf $(VENV) $(DEMO_OUT) .mypy_cache .ruff_cache .pytest_cache
