# The README's commands. Every target sets up what is missing first; set-up is cached in
# $(STYLEGAN_CACHE) (default ~/.cache/stylegan-operator), so second runs start in seconds.
SHELL := /bin/bash
export STYLEGAN_CACHE ?= $(HOME)/.cache/stylegan-operator
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: help setup venv tools test demo cluster cluster-down bench generate lint clean \
	chart-package chart-push images

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

venv:  ## the Python environment (.venv -> a cached venv keyed by the dependencies)
	@bash hack/setup-venv.sh >/dev/null

tools:  ## etcd, Kubernetes, kwok, helm, fake-gcs-server, an OCI registry from Go modules; Prometheus from Debian
	@bash hack/build-tools.sh >/dev/null
	@bash hack/install-prometheus.sh

setup: venv tools  ## everything the tests need

test: setup  ## every test (unit, integration on the local control plane, e2e)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: venv  ## train faces on CPU for about ten minutes, then write the grid and the figures
	.venv/bin/stylegan demo

cluster: setup  ## start the local control plane and print the kubeconfig
	@$(PY) hack/localcluster.py up

cluster-down:  ## stop the local control plane started by `make cluster`
	@python3 hack/localcluster.py down

bench: venv  ## benchmarks that print figures (never asserted in tests)
	$(PY) bench/trainer.py
	$(PY) bench/data_loading.py
	$(PY) bench/quality_reference.py

generate: venv tools  ## regenerate every committed generated file (CRD, chart copies, dashboards, chart README)
	.venv/bin/stylegan crd -f manifests/crd/stylegan.dev_styleganruns.yaml
	cp manifests/crd/stylegan.dev_styleganruns.yaml charts/stylegan-operator/crds/
	cp monitoring/alerts.yaml charts/stylegan-operator/rules/alerts.yaml
	$(PY) hack/dashboards.py
	$(STYLEGAN_CACHE)/bin/helm-docs --chart-search-root charts --sort-values-order file --log-level warning

# Release (docs/releasing.md): the chart as a package and an OCI artifact, the images by bake.
CHART_VERSION := $(shell sed -n 's/^version: *//p' charts/stylegan-operator/Chart.yaml)
CHART_REGISTRY ?= oci://ghcr.io/stylegan-operator/charts
HELM ?= $(STYLEGAN_CACHE)/bin/helm
DIST ?= dist

chart-package: tools  ## $(DIST)/stylegan-operator-<version>.tgz (DIST=dist), linted first
	$(HELM) lint --strict charts/stylegan-operator
	$(HELM) package charts/stylegan-operator -d $(DIST)

chart-push: chart-package  ## push the packaged chart to $(CHART_REGISTRY) (helm registry login first)
	$(HELM) push $(DIST)/stylegan-operator-$(CHART_VERSION).tgz $(CHART_REGISTRY) $(HELM_PUSH_FLAGS)

images:  ## operator and trainer images with SBOM and provenance (docker buildx bake, docker-bake.hcl)
	docker buildx bake $(BAKE_FLAGS)

lint: venv  ## ruff
	.venv/bin/ruff check common operator trainer tests bench hack

clean:  ## remove build outputs of this checkout (not the shared cache)
	rm -rf .pytest_cache .ruff_cache .mypy_cache out build dist
