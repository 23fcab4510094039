# The README's two commands: `make demo` and `make test`. Both create the venv when needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Let DVC stages find the `atlas` console script.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest exits 5 when it collects nothing: that is a broken suite, not a pass.
test: lint
	$(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

demo: $(STAMP)
	$(BIN)/dvc repro
	@echo
	@echo "Demo outputs are in outputs/demo/:"
	@echo "  data/            the generated world (train, test, test-swapped)"
	@echo "  model/model.pt   the trained CNN; metrics/train.json its accuracy per split and class"
	@$(BIN)/python -c "import json; m = json.load(open('outputs/demo/metrics/train.json')); \
	print('  accuracy: ' + ', '.join(f'{k} {v[\"accuracy\"]:.3f}' for k, v in m.items() if isinstance(v, dict)))"

clean:
	rm -rf outputs .pytest_cache .ruff_cache
