# Entry points for a fresh clone; each creates .venv on first use.
#   make app         set up and start the web app on http://127.0.0.1:7860 (and its MCP tool)
#   make test        set up and run the test suite (the quick part: about 2 minutes on 2 cores, 4 at most)
#   make test-slow   the rest: multi-process training and the browser tests (CI runs both)
# Add CPU=1 to take PyTorch's CPU-only wheels (download.pytorch.org) instead of the default CUDA build.
PYTHON ?= python3
CPU    ?=
CPU_INDEX := https://download.pytorch.org/whl/cpu
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp

.PHONY: app test test-slow clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(if $(CPU),$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --index-url $(CPU_INDEX) \
		"torch==$$(sed -n 's/^torch==//p' requirements.txt)" "torchvision==$$(sed -n 's/^torchvision==//p' requirements.txt)",)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

app: $(STAMP)
	$(VENV)/bin/python app.py

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow and not browser"

test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "slow or browser"

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts eval-report cam-report
