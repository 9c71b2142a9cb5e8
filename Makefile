# Two commands on a fresh Linux/macOS machine with Python 3.11+:
#   make lab    install into .venv and open the lessons in JupyterLab
#   make test   install into .venv and run the unit tests and every notebook (quick mode)
#   make test-colab   the same tests on Google Colab's versions (constraints/colab.txt: Python 3.13,
#                     TensorFlow 2.20.0, Keras 3.13.2, NumPy 2.1.3, Colab's runtime of 2026-08; Linux)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
COLAB_VENV ?= .venv-colab
# Two test processes (pytest-xdist), each test file or notebook whole in one of them:
# about 1.5 times faster on 2 cores. PARALLEL= runs everything in one process.
PARALLEL ?= -n 2 --dist loadfile
# The exact versions of the last green run of each environment; pip installs within them.
CONSTRAINTS := constraints/course.txt
COLAB_CONSTRAINTS := constraints/colab.txt

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
