# exokey's vocabulary. Every tool is built from the Go module proxy at a
# version pinned in a go.mod under hack/tools, into bin/.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

export GOFLAGS ?= -mod=mod
export GOTOOLCHAIN ?= local

ROOT        := $(CURDIR)
BIN         := $(ROOT)/bin
K8S_VERSION := $(shell cd hack/tools/k8s && go list -m -f '{{.Version}}' k8s.io/kubernetes | sed 's/^v//')
K8S_BIN     := $(BIN)/k8s/$(K8S_VERSION)
CONTROLLER_GEN := $(BIN)/controller-gen
HELM        := $(BIN)/helm
HELM4       := $(BIN)/helm4
ACTIONLINT  := $(BIN)/actionlint
KREW_VALIDATE := $(BIN)/validate-krew-manifest
CRD_REF_DOCS := $(BIN)/crd-ref-docs
KUSTOMIZE   := $(BIN)/kustomize
PROMTOOL    := $(BIN)/promtool
METRICNAMES := $(BIN)/metricnames
KUBE_API_LINTER := $(BIN)/kube-api-linter
IMG         ?= exokey:dev
GO_TEST_FLAGS ?= -race -count=1

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs and RBAC from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/...;./internal/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	hack/sync-chart.sh

.PHONY: generate
generate: $(CONTROLLER_GEN) $(CRD_REF_DOCS) ## Generate the deepcopy methods and the API reference (docs/reference/api.md).
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."
	$(CRD_REF_DOCS) --source-path ./api --config hack/crd-ref-docs.yaml --renderer markdown \
		--output-path docs/reference/api.md --log-level ERROR

.PHONY: lint-api
lint-api: $(KUBE_API_LINTER) ## kube-api-linter on the stored API version, api/v1beta1 (.golangci-kal.yml says which linters and why).
	$(KUBE_API_LINTER) run -c .golangci-kal.yml ./api/v1beta1/...

.PHONY: verify-generated
verify-generated: ## Fail when the committed generated files are not what the markers produce.
	hack/verify-generated.sh

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet, and a check that every Go file is gofmt-formatted.
	go vet ./...
	@unformatted="$$(gofmt -l api cmd internal hack test 2>/dev/null)"; if [ -n "$$unformatted" ]; then echo "not gofmt-formatted (run make fmt):"; echo "$$unformatted"; exit 1; fi

.PHONY: control-plane
control-plane: $(K8S_BIN)/kubectl ## Build etcd, kube-apiserver, kube-controller-manager and kubectl into bin/k8s/<version> (once).

$(K8S_BIN)/kubectl:
	hack/build-control-plane.sh $(K8S_BIN)

FUZZ_TIME ?= 10s

.PHONY: test
test: verify-generated vet lint-api control-plane helm-lint release-lint $(PROMTOOL) $(METRICNAMES) ## Everything: unit, emulator and envtest suites, chart, workflow and krew checks, a short fuzz, end-to-end.
	KUBEBUILDER_ASSETS="$(K8S_BIN)" go test $(GO_TEST_FLAGS) ./...
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory test-e2e
	$(MAKE) --no-print-directory test-docs

.PHONY: test-e2e
test-e2e: control-plane build $(HELM) $(HELM4) ## End-to-end on real binaries: control plane, chart RBAC, manager and emulator processes, Helm 4 and kubectl waiting.
	K8S_VERSION=$(K8S_VERSION) KUBEBUILDER_ASSETS="$(K8S_BIN)" go test -tags e2e -count=1 -timeout 40m -v ./test/e2e/ -ginkgo.v

.PHONY: test-docs
test-docs: control-plane build ## Run the docs' shell blocks marked runnable against make demo's cluster.
	go build -o $(BIN)/exokey-demo ./hack/demo
	KUBEBUILDER_ASSETS="$(K8S_BIN)" go test -tags docs -count=1 -timeout 20m -v ./test/docs/

.PHONY: test-chaos
test-chaos: control-plane build $(HELM) ## The chaos suite at full size (1000 AccessKeys, 20 kills, 5000 churned); make test runs it smaller.
	CHAOS_FULL=1 K8S_VERSION=$(K8S_VERSION) KUBEBUILDER_ASSETS="$(K8S_BIN)" go test -tags e2e -count=1 -timeout 60m -v ./test/e2e/ -ginkgo.v -ginkgo.label-filter=chaos

.PHONY: test-live
test-live: ## The conformance suite against a real Exoscale organisation: needs EXOSCALE_API_KEY and EXOSCALE_API_SECRET (EXOSCALE_ZONE, EXOSCALE_BUCKET optional).
	@if [ -z "$${EXOSCALE_API_KEY:-}" ] || [ -z "$${EXOSCALE_API_SECRET:-}" ]; then echo "skipped: no Exoscale credentials"; exit 0; fi; \
	go test -tags live -count=1 -timeout 20m -v -run '^TestLive$$' ./test/conformance/

.PHONY: helm-lint
helm-lint: $(HELM) $(HELM4) ## helm lint and helm template of dist/chart with Helm 3 and Helm 4, with default and full values.
	for helm in $(HELM) $(HELM4); do \
		$$helm lint --strict --kube-version $(K8S_VERSION) dist/chart; \
		$$helm template exokey dist/chart --kube-version $(K8S_VERSION) --namespace exokey-system >/dev/null; \
		$$helm template exokey dist/chart --kube-version $(K8S_VERSION) --namespace exokey-system --set clusterKeyIssuer.create=true \
			--set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true --set metrics.grafanaDashboard.enabled=true \
			--set replicaCount=2 --set manager.logLevel=debug >/dev/null; \
		if $$helm template exokey dist/chart --kube-version $(K8S_VERSION) --set replicaCount=-1 >/dev/null 2>&1; then \
			echo "values.schema.json accepted replicaCount=-1 ($$helm)"; exit 1; fi; \
	done

.PHONY: build-installer
build-installer: manifests $(KUSTOMIZE) ## Write dist/install.yaml from config/default (IMG sets the image).
	mkdir -p dist
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default > dist/install.yaml
	cd config/manager && $(KUSTOMIZE) edit set image controller=exokey:dev

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZ_TIME (default 10s).
	go test -run '^$$' -fuzz '^FuzzParseAuthorization$$' -fuzztime $(FUZZ_TIME) ./internal/emulator/
	go test -run '^$$' -fuzz '^FuzzPolicyEvaluation$$' -fuzztime $(FUZZ_TIME) ./internal/exoscale/policy/
	go test -run '^$$' -fuzz '^FuzzTemplateSandbox$$' -fuzztime $(FUZZ_TIME) ./internal/secret/
	go test -run '^$$' -fuzz '^FuzzCeiling$$' -fuzztime $(FUZZ_TIME) ./internal/controller/

##@ Build

.PHONY: build
build: ## Build the manager, the emulator and the kubectl plugin into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/manager ./cmd
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/exoscale-emulator ./cmd/exoscale-emulator
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o $(BIN)/kubectl-exokey ./cmd/kubectl-exokey

VERSION ?= dev
IMAGE_REPO ?= ghcr.io/exokey/exokey

.PHONY: image
image: ## The manager's image for linux/amd64 and linux/arm64, with no container engine: bin/exokey-image.tar (OCI image layout archive; VERSION=v1.2.3).
	go run ./hack/image --version $(VERSION) --out $(BIN)/exokey-image.tar

.PHONY: release
release: $(HELM4) $(KUSTOMIZE) ## Every release artifact into dist/release/ with checksums: image archive, chart, installer, plugin archives, krew manifest (VERSION=v1.2.3).
	hack/release.sh $(VERSION) $(IMAGE_REPO)

.PHONY: release-lint
release-lint: $(ACTIONLINT) $(KREW_VALIDATE) ## actionlint on .github/workflows, and krew's own validator on dist/krew/exokey.yaml.
	$(ACTIONLINT) -shellcheck= .github/workflows/*.yml
	$(KREW_VALIDATE) -manifest dist/krew/exokey.yaml -skip-install

.PHONY: krew-manifest
krew-manifest: ## Build the kubectl-exokey release archives into dist/release and write dist/krew/exokey.yaml (VERSION=v1.2.3).
	hack/krew-manifest.sh $(VERSION)

.PHONY: emulator
emulator: ## Run the Exoscale emulator on 127.0.0.1:8080 (state in bin/emulator-state.json).
	go run ./cmd/exoscale-emulator --listen 127.0.0.1:8080 --state $(BIN)/emulator-state.json

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig.
	go run ./cmd --metrics-secure=false --health-probe-bind-address=:8081

.PHONY: demo
demo: control-plane build ## The operator doing its job on a local control plane and the emulator (Ctrl-C ends it).
	go build -o $(BIN)/exokey-demo ./hack/demo
	KUBEBUILDER_ASSETS="$(K8S_BIN)" $(BIN)/exokey-demo

.PHONY: bench
bench: control-plane build ## Measure convergence, cost per key, steady state, drift correction, memory, faults, rotation (BENCH_QUICK=1 for a small run).
	go test -run '^$$' -bench '^(BenchmarkInventory|BenchmarkSecretCache)$$' -benchtime 3x ./internal/controller/
	KUBEBUILDER_ASSETS="$(K8S_BIN)" go run ./test/bench $(BENCH_ARGS)

.PHONY: docker-build
docker-build: ## Build the image (needs a container engine).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: deploy
deploy: build-installer ## Install exokey into the current kubeconfig's cluster (IMG sets the image).
	kubectl apply --server-side -f dist/install.yaml

.PHONY: helm
helm: helm-lint ## Check the chart; install it with: helm install exokey dist/chart -n exokey-system --create-namespace
	@echo "chart dist/chart is valid"

.PHONY: install
install: manifests ## Install the CRDs into the current kubeconfig's cluster.
	kubectl apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: ## Remove the CRDs from the current kubeconfig's cluster.
	kubectl delete --ignore-not-found -f config/crd/bases

$(HELM): hack/tools/helm/go.mod
	mkdir -p $(BIN)
	cd hack/tools/helm && go build -o $(HELM) helm.sh/helm/v3/cmd/helm

$(CRD_REF_DOCS): hack/tools/crd-ref-docs/go.mod
	mkdir -p $(BIN)
	cd hack/tools/crd-ref-docs && go build -o $(CRD_REF_DOCS) github.com/elastic/crd-ref-docs

$(ACTIONLINT): hack/tools/actionlint/go.mod
	mkdir -p $(BIN)
	cd hack/tools/actionlint && go build -o $(ACTIONLINT) github.com/rhysd/actionlint/cmd/actionlint

$(KREW_VALIDATE): hack/tools/krew/go.mod
	mkdir -p $(BIN)
	cd hack/tools/krew && go build -o $(KREW_VALIDATE) sigs.k8s.io/krew/cmd/validate-krew-manifest

# Prometheus's promtool, and metricnames (PromQL parsed by Prometheus's own
# parser), for test/monitoring's checks of the shipped alerts and dashboard.
$(PROMTOOL): hack/tools/promtool/go.mod
	mkdir -p $(BIN)
	cd hack/tools/promtool && go build -o $(PROMTOOL) github.com/prometheus/prometheus/cmd/promtool

$(METRICNAMES): hack/tools/promtool/go.mod hack/tools/promtool/metricnames/main.go
	mkdir -p $(BIN)
	cd hack/tools/promtool && go build -o $(METRICNAMES) ./metricnames

# kube-api-linter: golangci-lint with Kubernetes' API conventions built in.
$(KUBE_API_LINTER): hack/tools/kal/go.mod
	@mkdir -p $(BIN)
	cd hack/tools/kal && go build -o $(KUBE_API_LINTER) sigs.k8s.io/kube-api-linter/cmd/golangci-lint-kube-api-linter

$(HELM4): hack/tools/helm4/go.mod
	mkdir -p $(BIN)
	cd hack/tools/helm4 && go build -o $(HELM4) helm.sh/helm/v4/cmd/helm

$(KUSTOMIZE): hack/tools/kustomize/go.mod
	mkdir -p $(BIN)
	cd hack/tools/kustomize && go build -o $(KUSTOMIZE) sigs.k8s.io/kustomize/kustomize/v5

$(CONTROLLER_GEN): hack/tools/gen/go.mod
	mkdir -p $(BIN)
	cd hack/tools/gen && go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen
