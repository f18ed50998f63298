# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-stream test bench install lock clean

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m pipeline.local.demo

demo-stream: $(STAMP)
	$(PY) -m pipeline.local.demo_stream

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench

# The Flex Template image's locked dependencies (templates/Dockerfile).
lock: $(STAMP)
	$(PY) -m pip install --quiet pip-tools
	$(VENV)/bin/pip-compile --quiet --strip-extras --extra gcp --no-emit-index-url \
	    --no-emit-find-links --output-file templates/requirements.lock \
	    pyproject.toml templates/requirements.in

clean:
	rm -rf $(VENV) output demo-output demo-stream-output *.egg-info
