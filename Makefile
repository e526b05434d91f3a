# CareKey: the verbs.  `make dev` and `make test` set up everything they need.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
TOOLS := .venv-tools

# A Python 3.12 (the Lambda runtime's version): on PATH, or through pyenv.
PYTHON312 ?= $(shell for c in python3.12 "env PYENV_VERSION=3.12.1 python3.12" $$(ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null); do \
	$$c -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { echo "$$c"; break; }; done)

.PHONY: screenshots dev test lint spec-lint scan build bench load deploy openapi fuzz audit-verify audit-export admin import-users import-status clean

$(VENV)/.installed: requirements-dev.txt layers/common/requirements.txt
	@test -n "$(PYTHON312)" || { echo "Python 3.12 is needed (python3.12 on PATH, or pyenv)"; exit 1; }
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# AWS SAM CLI and the scanners live in their own environment: their pins need not match the service's.
$(TOOLS)/.installed: requirements-tools.txt
	@test -n "$(PYTHON312)" || { echo "Python 3.12 is needed (python3.12 on PATH, or pyenv)"; exit 1; }
	$(PYTHON312) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	@touch $@

## dev: the whole API on http://127.0.0.1:3000 (PORT to change), emails in .local/outbox/
dev: $(VENV)/.installed
	@$(PY) -m local.server

# axe-core, which the browser tests inject into the sign-in page (npm ci: exactly the lock file's versions).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

## test: every test, offline, against moto (the browser tests drive Debian's chromium)
test: $(VENV)/.installed node_modules/.installed
	$(PY) -m pytest

## screenshots: walk the sign-in page's journey in Chromium and save each step to docs/ui/
screenshots: $(VENV)/.installed node_modules/.installed
	rm -f docs/ui/*.png
	UI_SCREENSHOTS=docs/ui $(PY) -m pytest tests/e2e/test_ui_journey.py

## openapi: regenerate docs/openapi.json from the code
openapi: $(VENV)/.installed
	$(PY) -m local.openapi_file

## spec-lint: Redocly (recommended rules, every finding an error) and Spectral (spectral:oas, warnings fail) on docs/openapi.json
spec-lint: node_modules/.installed
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true npx --no-install redocly lint docs/openapi.json --format=summary
	npx --no-install spectral lint --fail-severity=warn docs/openapi.json

## fuzz: schemathesis against the local API, every operation (FUZZ_SECONDS, default 300)
fuzz: $(VENV)/.installed
	$(PY) -m local.fuzz

## lint: ruff, cfn-lint and `sam validate --lint` on template.yaml
lint: $(VENV)/.installed $(TOOLS)/.installed
	$(VENV)/bin/ruff check layers functions local tests bench
	$(VENV)/bin/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(TOOLS)/bin/sam validate --lint --region us-east-1

SCAN := .venv-scan

$(SCAN)/.installed: requirements-scan.txt
	@test -n "$(PYTHON312)" || { echo "Python 3.12 is needed (python3.12 on PATH, or pyenv)"; exit 1; }
	$(PYTHON312) -m venv $(SCAN)
	$(SCAN)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-scan.txt
	@touch $@

## scan: checkov on template.yaml (zero failed checks) and bandit on the code (no medium or high finding)
scan: $(SCAN)/.installed
	$(SCAN)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download
	$(SCAN)/bin/bandit -q -ll -r layers/common/carekey functions local -c pyproject.toml

# API=http: the HTTP API option (template-httpapi.yaml, generated from template.yaml by local/http_api.py).
TEMPLATE := $(if $(filter http,$(API)),template-httpapi.yaml,template.yaml)

## build: `sam build` (API=http: the HTTP API option), then check the layer really is importable arm64 Python
build: $(TOOLS)/.installed $(VENV)/.installed
	$(if $(filter http,$(API)),$(PY) -m local.http_api)
	SAM_CLI_TELEMETRY=0 PATH="$(TOOLS)/bin:$$PATH" $(TOOLS)/bin/sam build --parallel -t $(TEMPLATE)
	$(PY) -m local.check_build .aws-sam/build

## bench: regenerate docs/performance.md
bench: $(VENV)/.installed
	$(PY) -m bench

LOAD := .venv-load

$(LOAD)/.installed: requirements-load.txt
	@test -n "$(PYTHON312)" || { echo "Python 3.12 is needed (python3.12 on PATH, or pyenv)"; exit 1; }
	$(PYTHON312) -m venv $(LOAD)
	$(LOAD)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-load.txt
	@touch $@

## load: Locust, headless, against the local API (LOAD_USERS=50 for LOAD_SECONDS=120); writes docs/load.json
load: $(VENV)/.installed $(LOAD)/.installed
	$(PY) -m bench.load

## deploy: sam build && sam deploy (CONFIG_ENV=prod for production; API=http for the HTTP API option)
deploy: build
	SAM_CLI_TELEMETRY=0 $(TOOLS)/bin/sam deploy --config-env $(or $(CONFIG_ENV),dev)
	STACK_NAME=$(or $(STACK_NAME),carekey-$(or $(CONFIG_ENV),dev)) $(PY) -m local.publish_keys

## audit-verify: walk the audit chains of a stack (STACK_NAME) or of the local API's emulator
audit-verify: $(VENV)/.installed
	@$(PY) -m local.audit_tool verify

## audit-export: one person's audit trail as JSON (EMAIL=...)
audit-export: $(VENV)/.installed
	@$(PY) -m local.audit_tool export "$(EMAIL)"

## admin: the operators' API, SigV4-signed with your AWS credentials (ARGS="disable USER_ID"; STACK_NAME for a stack)
admin: $(VENV)/.installed
	@$(PY) -m local.admin $(ARGS)

## import-users: import the Django backend's users with their password hashes (FILE=dump.json or .csv; STACK_NAME or a running `make dev`)
import-users: $(VENV)/.installed
	@$(PY) -m local.import_users "$(FILE)"

## import-status: imported accounts still on a Django hash, and those upgraded at login
import-status: $(VENV)/.installed
	@$(PY) -m local.import_users --status

clean:
	rm -rf .aws-sam .local
