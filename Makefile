# Two commands on a fresh Linux/macOS machine with Python 3.11+:
#   make lab    install into .venv and open the lessons in JupyterLab
#   make test   install into .venv and run the unit tests and every notebook (quick mode)
#   make test-colab   the same tests on Google Colab's versions (constraints/colab.txt: Python 3.13,
#                     TensorFlow 2.20.0, Keras 3.13.2, NumPy 2.1.3, Colab's runtime of 2026-08; Linux)
#   make site   the course as a website, from the committed notebooks (nothing runs): build/site/_build/html
#   make test-site   build it and open every page in headless Chromium (apt-get installs it if missing)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
COLAB_VENV ?= .venv-colab
# Two test processes (pytest-xdist), each test file or notebook whole in one of them, taken in the
# order tests/conftest.py gives (the longest first), not re-sorted by their number of tests:
# about 1.5 times faster on 2 cores. PARALLEL= runs everything in one process.
PARALLEL ?= -n 2 --dist loadfile --no-loadscope-reorder
# The exact versions of the last green run of each environment; pip installs within them.
CONSTRAINTS := constraints/course.txt
COLAB_CONSTRAINTS := constraints/colab.txt
# The website's own environment: Jupyter Book 1 needs markdown-it-py < 4, the course pins 4.
SITE_VENV ?= .venv-site
SITE_CONSTRAINTS := constraints/site.txt

.PHONY: lab test test-colab install clean

$(BIN)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[cpu,lab,test]"
	touch $@

install: $(BIN)/.installed

# JupyterLab refuses to start as root unless told; a container or a classroom image often runs as root.
lab: install
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

test: install
	GAN_LESSONS_QUICK=1 $(BIN)/python -m pytest --nbval-lax -q $(PARALLEL)

# Colab runs Python 3.13: python3.13 from the PATH, else one that pyenv installed.
$(COLAB_VENV)/bin/.installed: pyproject.toml $(COLAB_CONSTRAINTS)
	@py=$$(for p in python3.13 $(HOME)/.pyenv/versions/3.13*/bin/python3.13; do \
	    $$p -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && echo $$p && break; done); \
	  test -n "$$py" || { echo "make test-colab needs Python 3.13, as Colab runs; install it (for example" \
	    "with pyenv install 3.13) and run it again."; exit 2; }; \
	  echo "$$py -m venv $(COLAB_VENV)"; $$py -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COLAB_VENV)/bin/python -m pip install --quiet -c $(COLAB_CONSTRAINTS) -e ".[cpu,test]"
	touch $@

test-colab: $(COLAB_VENV)/bin/.installed
	GAN_LESSONS_QUICK=1 $(COLAB_VENV)/bin/python -m pytest --nbval-lax -q $(PARALLEL)

clean:
	rm -rf $(VENV) $(COLAB_VENV) runs notebooks/runs

# The website: Jupyter Book 1 from PyPI (the `site` extra), MathJax 3 from the npm registry
# (site/package-lock.json); nothing else is downloaded, at install or at build.
.PHONY: site test-site clean-site

$(SITE_VENV)/bin/.installed: pyproject.toml $(SITE_CONSTRAINTS) site/package.json site/package-lock.json
	$(PYTHON) -m venv $(SITE_VENV)
	$(SITE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SITE_VENV)/bin/python -m pip install --quiet -c $(SITE_CONSTRAINTS) -e ".[site]"
	npm ci --prefix site --no-audit --no-fund --loglevel=error
	touch $@

site: $(SITE_VENV)/bin/.installed
	$(SITE_VENV)/bin/python tools/build_site.py

# --noconftest: the course's tests/conftest.py imports TensorFlow, which the site does not need.
test-site: $(SITE_VENV)/bin/.installed
	$(SITE_VENV)/bin/python -m pytest --noconftest -q tests/test_site.py

clean-site:
	rm -rf $(SITE_VENV) site/node_modules build/site
