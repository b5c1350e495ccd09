# Two entry points: `make demo` and `make test`. Each creates .venv and installs the project first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo demo-gate test lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Real data (scikit-learn's digits), a base model trained on digits 0-4, then three fine-tunes
# of that base on all ten digits: the deployed baseline, a good candidate, and a flawed one
# whose training data files 60% of the 3s under 8 (val and test stay clean). qa gates both
# candidates against the baseline; examples/demo_expect.py reads their result.json and exits
# 0 only when the good one passes and the flawed one fails "3 read as 8". `|| true`: a failing
# qa run must not stop make before the expectation is checked (result.json has its exit code).
demo: $(STAMP)
	$(BIN)/trainer data digits --out data/digits
	$(BIN)/trainer data digits --out data/digits-source --classes 0-4
	$(BIN)/trainer data digits --out data/digits-mislabelled --mislabel 3:8 --mislabel-fraction 0.6
	$(BIN)/trainer finetune --data data/digits-source --arch resnet18 --epochs 4 \
		--augment crop --out checkpoints/base
	$(BIN)/trainer finetune --data data/digits --init checkpoints/base/best.pt --epochs 3 \
		--augment none --lr 3e-3 --out checkpoints/baseline-run
	$(BIN)/trainer finetune --data data/digits --init checkpoints/base/best.pt --epochs 6 \
		--augment crop --out checkpoints/candidate-run
	$(BIN)/trainer finetune --data data/digits-mislabelled --init checkpoints/base/best.pt \
		--epochs 6 --augment crop --out checkpoints/flawed-run
	cp checkpoints/baseline-run/best.pt checkpoints/baseline.pt
	cp checkpoints/candidate-run/best.pt checkpoints/candidate.pt
	cp checkpoints/flawed-run/best.pt checkpoints/flawed.pt
	$(BIN)/qa describe checkpoints/candidate.pt
	$(MAKE) --no-print-directory demo-gate

# The gating half of the demo alone, on the checkpoints `make demo` trained.
demo-gate: $(STAMP)
	rm -rf reports/good reports/flawed
	$(BIN)/qa run suites/release.yaml checkpoints/candidate.pt --out reports/good || true
	$(BIN)/qa run suites/release.yaml checkpoints/flawed.pt --out reports/flawed || true
	$(BIN)/python examples/demo_expect.py reports/good reports/flawed --fails "3 read as 8"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) data checkpoints .qa-cache reports/good reports/flawed \
		reports/*.json reports/*.xml reports/*.html reports/*.md
