# Two entry points: `make demo` and `make test`. Each creates .venv and installs the project first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Real data (scikit-learn's digits), a base model trained on digits 0-4, then two fine-tunes
# of that base on all ten digits: the deployed baseline and the candidate.
demo: $(STAMP)
	$(BIN)/trainer data digits --out data/digits
	$(BIN)/trainer data digits --out data/digits-source --classes 0-4
	$(BIN)/trainer finetune --data data/digits-source --arch resnet18 --epochs 4 \
		--augment crop --out checkpoints/base
	$(BIN)/trainer finetune --data data/digits --init checkpoints/base/best.pt --epochs 3 \
		--augment none --lr 3e-3 --out checkpoints/baseline-run
	$(BIN)/trainer finetune --data data/digits --init checkpoints/base/best.pt --epochs 6 \
		--augment crop --out checkpoints/candidate-run
	cp checkpoints/baseline-run/best.pt checkpoints/baseline.pt
	cp checkpoints/candidate-run/best.pt checkpoints/candidate.pt
	$(BIN)/qa describe checkpoints/candidate.pt
	$(BIN)/qa run suites/release.yaml checkpoints/candidate.pt

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) data checkpoints .qa-cache reports/*.json reports/*.xml reports/*.html reports/*.md
