SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fastcam-installed
NBRUN := $(VENV)/nbrun


.PHONY: test demo venv browser export export-check nbtest notebooks docs pytest bench bench-smoke readme clean

venv: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[dev,bench]"
	touch $(STAMP)

export: venv
	$(BIN)/nbdev-export

# The library must be exactly what the notebooks export.
export-check: export
	@if ! git diff --quiet -- fastcam || [ -n "$$(git ls-files --others --exclude-standard -- fastcam)" ]; then \
	  echo "ERROR: nbdev-export changed fastcam/: the library is out of sync with nbs/." >&2; \
	  git --no-pager diff --stat -- fastcam >&2; git ls-files --others --exclude-standard -- fastcam >&2; exit 1; fi
	python3 tools/make_readme.py --check
	$(BIN)/python benchmarks/render.py --check

# Two notebooks at a time on two cores: one torch thread each, or they fight over the cores. They run on a copy,
# which keeps its outputs, so that a cell that draws without a stored output fails (the docs show stored outputs)
# and testing never rewrites nbs/.
NBTEST := GRADIO_ANALYTICS_ENABLED=False OMP_NUM_THREADS=1 $(BIN)/nbdev-test --n-workers 2 --save --timing
nbtest: venv
	rm -rf $(NBRUN) && mkdir -p $(NBRUN) && cp -r nbs $(NBRUN)/
	ln -s ../../README.md ../../benchmarks ../../tools $(NBRUN)/  # what the notebooks read from ../
	$(NBTEST) $(NBRUN)/nbs
	$(BIN)/python tools/check_outputs.py $(NBRUN)/nbs nbs

# Run every notebook offline on synthetic data and store its outputs in nbs/, the `slow` cells (measurements over
# several trained models, which nbtest skips) included; cells flagged `pets`, which need the real PETS download, keep
# theirs
notebooks: venv
	$(NBTEST) --flags slow --cell-timeout 3000  # (a slow cell trains several models: more than the 600 s default)
	$(BIN)/nbdev-clean

# The docs site, from the notebooks' stored outputs: _site/index.html (open it from disk, or serve _site/)
docs: venv
	$(BIN)/python tools/make_docs.py --out _site

# A real browser for tests/test_browser.py and tests/test_docs.py: Debian's chromium and chromedriver, installed where
# missing (as root, as in CI); where they are still missing after that, one line says so and the target fails
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
APT := apt-get
browser:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v $(APT) >/dev/null; then \
	  { $(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq chromium chromium-driver >/dev/null; } \
	  || { echo "ERROR: $(APT) could not install chromium and chromium-driver, which the browser tests need" >&2; exit 1; }; fi; \
	[ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ] || { echo "ERROR: no browser for the browser tests: $(CHROMIUM) and \
	$(CHROMEDRIVER) are missing (as root: apt-get install chromium chromium-driver)" >&2; exit 1; }

pytest: venv browser
	GRADIO_ANALYTICS_ENABLED=False $(BIN)/pytest tests -q -rs -n 2 --dist loadfile --durations=15

# The browser's install (mostly download and unpacking) runs while the notebooks are tested
test: export-check
	@$(MAKE) -s browser > $(VENV)/browser.log 2>&1 & pid=$$!; \
	  $(MAKE) nbtest bench-smoke; rc=$$?; wait $$pid; brc=$$?; cat $(VENV)/browser.log; \
	  [ $$rc = 0 ] && [ $$brc = 0 ] && $(MAKE) pytest

# The benchmark is not a test: CI only checks that it still runs (bs 2, one repeat), never its timings.
bench-smoke: venv
	$(BIN)/python benchmarks/bench_cam.py --smoke
	$(BIN)/python benchmarks/bench_methods.py --smoke

# The recipes, offline: synthetic pets-like data, resnet18 from scratch (with demo_out/audit.html and a Space: app.py);
# synthetic reviews, AWD-LSTM from scratch.
demo: venv
	$(BIN)/fastcam-pets --synthetic --monitor 4 --out demo_out
	$(BIN)/fastcam-text --synthetic --out demo_out/text

bench: venv
	$(BIN)/python benchmarks/bench_cam.py
	$(BIN)/python benchmarks/bench_methods.py
	$(BIN)/python benchmarks/bench_vit_defaults.py

readme:
	python3 tools/make_readme.py

clean:
	rm -rf $(VENV) demo_out _docs _site
