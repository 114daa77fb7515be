# One-command entry points for a fresh Debian machine: `make demo`, `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
DEBS   := gcc gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench fuzz clean

setup: $(STAMP)

# Debian packages only when a tool is missing (apt-get update is slow), then the venv.
$(STAMP): pyproject.toml
	@if ! command -v gcc >/dev/null || ! command -v arm-none-eabi-gcc >/dev/null \
	   || ! command -v qemu-system-arm >/dev/null \
	   || ! [ -f /usr/lib/arm-none-eabi/newlib/libc.a ]; then \
	  echo "installing Debian packages: $(DEBS)"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(DEBS); \
	fi
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,torch,ray]'
	# tf_keras converts an LSTM to the fused op (Keras 3 does not); it asks for
	# `tensorflow` by name, which tensorflow-cpu already is: no deps
	$(VENV)/bin/pip install -q --no-deps 'tf-keras==2.21.0'
	touch $@

demo: setup
	$(PY) -m tinycomp.demo

test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup

# A longer fuzz run than the suite's (fresh random mutants each time).
fuzz: setup
	TINYCOMP_FUZZ_EXAMPLES=30000 $(PY) -m pytest -q -s tests/host/test_fuzz_models.py

# make bench BOARD=qemu-mps3-an547: one board (default: mps2-an386 and -an385);
# OPTIMIZE=speed: the builds' aim (default balanced)
bench: setup
	$(PY) -m benchmarks.bench $(if $(BOARD),--board $(BOARD)) $(if $(OPTIMIZE),--optimize $(OPTIMIZE))

clean:
	rm -rf $(VENV) .cache build out demo-out
