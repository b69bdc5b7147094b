# Set-up and the two everyday commands (README): `make run` and `make test`, in a Python 3.10 venv with everything
# (Lava included). `make test-core` runs the test suite on another Python without Lava (CORE_PY, default 3.12:
# numpy 2; the Lava tests skip, saying why); CI runs both.
VENV := .venv
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
CONFIG ?= configs/default.toml
CORE_PY ?= 3.12
CORE_VENV := .venv-py$(CORE_PY)

.PHONY: run test test-core env clean

run: $(STAMP)
	$(VENV)/bin/evprop run $(CONFIG)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -ra

env: $(STAMP)

$(STAMP): pyproject.toml scripts/find_python.sh
	@test -x $(VENV)/bin/python || { PY=$$(./scripts/find_python.sh 3.10) && $$PY -m venv $(VENV); }
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[test,lava,tonic,onnx,ray]'
	rm -f $(VENV)/.installed-*
	touch $@

test-core:
	@test -x $(CORE_VENV)/bin/python || { PY=$$(./scripts/find_python.sh $(CORE_PY)) && $$PY -m venv $(CORE_VENV); }
	$(CORE_VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
	$(CORE_VENV)/bin/python -c 'import sys, numpy; print("core tests on Python", sys.version.split()[0], "numpy", numpy.__version__)'
	$(CORE_VENV)/bin/python -m pytest -q -ra

clean:
	rm -rf $(VENV) .venv-py* runs
