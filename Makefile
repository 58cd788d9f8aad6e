# ganlab: `make train` and `make test` set up everything they need on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup data train test clean
help:  ## list the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

setup: $(STAMP) data  ## create .venv and install the project (pinned torch), fetch Fashion-MNIST

data: $(FMNIST)  ## install Debian's dataset-fashion-mnist when its files are missing
$(FMNIST):
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq dataset-fashion-mnist

train: setup  ## train the default experiment (DCGAN on Fashion-MNIST, ~10 min on 2 CPU cores)
	$(PY) train.py $(ARGS)

test: setup  ## run the test suite (includes short real trainings that check learned behaviour)
	$(PY) -m pytest -q $(ARGS)

clean:  ## remove run outputs (keeps .venv)
	rm -rf outputs multirun .pytest_cache
