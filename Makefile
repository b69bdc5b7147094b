# Set-up and the two everyday commands (README): `make run` and `make test`.
VENV := .venv
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
CONFIG ?= configs/default.toml

.PHONY: run test env clean

run: $(STAMP)
	$(VENV)/bin/evprop run $(CONFIG)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -ra

env: $(STAMP)

$(STAMP): pyproject.toml scripts/find_python310.sh
	@test -x $(VENV)/bin/python || { PY=$$(./scripts/find_python310.sh) && $$PY -m venv $(VENV); }
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[test,tonic,onnx,ray]'
	rm -f $(VENV)/.installed-*
	touch $@

clean:
	rm -rf $(VENV) runs
