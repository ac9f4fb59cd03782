# The two commands of the README, and the helpers they use.
#   make book   build the executed book into _build/html (the main job)
#   make test   unit tests + every notebook under nbval + a strict build of the book's structure
#   make bench  execute every notebook, time it, and write book/runtime.md
#   make sweep  run every notebook with 1-4 threads and report how far each checked number moves
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: env book test bench sweep strip clean

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

# MMCOURSE_STRICT=1: a check of the text that does not hold fails the build (a reader's session
# prints it and goes on; see mmcourse/checks.py).
book: $(STAMP)
	MMCOURSE_STRICT=1 $(BIN)/jupyter-book build . --builder html -W --keep-going

# Notebooks run two at a time with one thread each (two 2-thread kernels on 2 cores thrash).
test: $(STAMP)
	MMCOURSE_STRICT=1 OMP_NUM_THREADS=1 MMCOURSE_THREADS=1 MPLBACKEND=Agg HF_HUB_OFFLINE=1 \
	  $(BIN)/python -m pytest tests chapters book --nbval-lax -n 2 --dist loadfile -q

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

sweep: $(STAMP)
	$(BIN)/python scripts/thread_sweep.py

strip:
	$(BIN)/python scripts/strip_notebooks.py chapters book

clean:
	rm -rf _build
