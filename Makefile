# Two commands on a fresh Linux/macOS machine with Python 3.10+:
#   make lab    install into .venv and open the lessons in JupyterLab
#   make test   install into .venv and run the unit tests and every notebook (quick mode)
#   make test-colab   the same tests on Google Colab's versions (TensorFlow 2.19, Keras 3.10, NumPy 2.0; Linux)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
COLAB_VENV ?= .venv-colab
# Two test processes (pytest-xdist), each test file or notebook whole in one of them:
# about 1.5 times faster on 2 cores. PARALLEL= runs everything in one process.
PARALLEL ?= -n 2 --dist loadfile
COLAB_PINS := "tensorflow-cpu==2.19.*" "keras==3.10.0" "numpy==2.0.2"

.PHONY: lab test test-colab install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[cpu,lab,test]"
	touch $@

install: $(BIN)/.installed

lab: install
	$(BIN)/jupyter lab notebooks/

test: install
	GAN_LESSONS_QUICK=1 $(BIN)/python -m pytest --nbval-lax -q $(PARALLEL)

$(COLAB_VENV)/bin/.installed: pyproject.toml
	$(PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COLAB_VENV)/bin/python -m pip install --quiet $(COLAB_PINS) -e ".[cpu,test]"
	touch $@

test-colab: $(COLAB_VENV)/bin/.installed
	GAN_LESSONS_QUICK=1 $(COLAB_VENV)/bin/python -m pytest --nbval-lax -q $(PARALLEL)

clean:
	rm -rf $(VENV) $(COLAB_VENV) runs notebooks/runs
