# Two commands on a fresh Linux/macOS machine with Python 3.10+:
#   make lab    install into .venv and open the lessons in JupyterLab
#   make test   install into .venv and run the unit tests and every notebook (quick mode)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: lab test install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[cpu,lab,test]"
	touch $@

install: $(BIN)/.installed

lab: install
	$(BIN)/jupyter lab notebooks/

test: install
	GAN_LESSONS_QUICK=1 $(BIN)/python -m pytest --nbval-lax -q

clean:
	rm -rf $(VENV) runs
