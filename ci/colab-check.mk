# `make colab-check`: run the committed chapters as a Google Colab reader does (Python 3.13,
# Colab's torch/numpy/scikit-learn/..., ci/colab-requirements.txt, each chapter installing
# companion from its first cell) and compare their text outputs with the committed ones.
# Needs no .venv: the system Python drives it; the Colab environment is .colab-venv (~3 GB
# on the first run, reused afterwards). Included by the Makefile.
#   make colab-check COLAB_ARGS="--chapters 01_perceptron,02_backpropagation"
#   make colab-check COLAB_ARGS=--worktree   (uncommitted changes too)
COLAB_ARGS ?=

.PHONY: colab-check
colab-check:
	python3 ci/colab_check.py $(COLAB_ARGS)
