# Both targets create/update .venv from the pinned files, then run.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: quickstart test test-fast setup clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# torch is pinned inside requirements.lock so pip never pulls a CUDA build.
	$(VENV)/bin/pip install --quiet -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

quickstart: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(VENV)/bin/xstilts quickstart

test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(VENV)/bin/python -m pytest tests

# The inner loop: everything but the tests marked slow (end-to-end runs of the real CLI).
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(VENV)/bin/python -m pytest tests -m "not slow"

clean:
	rm -rf $(VENV) xstilts_runs
