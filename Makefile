# Two entry points for a fresh clone; each creates .venv on first use.
#   make app    set up and start the web app on http://127.0.0.1:7860
#   make test   set up and run the test suite
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp

.PHONY: app test clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

app: $(STAMP)
	$(VENV)/bin/python app.py

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts eval-report
