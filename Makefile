# The two commands of the README:
#   make run    execute every lab headless in fast mode on the synthetic data; report in build/report.md
#   make test   the whole test suite
# Each bootstraps itself: creates .venv with python3 (3.11+) and installs the course if needed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cellkit-installed

.PHONY: run test install full build check clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cellkit needs Python 3.11 or newer, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[course,dev,jax]"
	# the otter-grader that Colab's install cell gets (the `colab` extra), beside the instructors' one,
	# so that tests/test_colab.py can run the students' checks with it
	$(BIN)/python -m pip install -q --no-deps --upgrade --target $(VENV)/otter-colab "otter-grader>=5.7,<6"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/cellkit run --fast --source synthetic --walkthroughs --out build

test: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest -n 2 --dist loadfile --nbval-lax --durations=12

full: $(STAMP)
	$(BIN)/cellkit run --full --source synthetic --out build/full

build: $(STAMP)
	$(BIN)/cellkit course build

check: $(STAMP)
	$(BIN)/cellkit course check

clean:
	rm -rf build
