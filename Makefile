# Set-up on a fresh machine: `make demo`, then `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fedsante demo --out out/demo

# pytest exits 5 when it collects no test; that is not a failure here.
test: $(STAMP)
	$(BIN)/python -m pytest -q src tests; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; else exit $$rc; fi

bench: $(STAMP)
	$(BIN)/fedsante bench heart --seeds 42 43 44 45 46
	$(BIN)/fedsante bench heart --dp --repeats 5
	$(BIN)/fedsante bench protocol --rounds 30

clean:
	rm -rf $(VENV) out
