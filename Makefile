# Image URL to use all building/pushing image targets
IMG ?= controller:latest
# YEAR defines the year value used for substituting the YEAR placeholder in the boilerplate header.
YEAR ?= $(shell date +%Y)

# Get the currently used golang install path (in GOPATH/bin, unless GOBIN is set)
ifeq (,$(shell go env GOBIN))
GOBIN=$(shell go env GOPATH)/bin
else
GOBIN=$(shell go env GOBIN)
endif

# CONTAINER_TOOL defines the container tool to be used for building images.
# Be aware that the target commands are only tested with Docker which is
# scaffolded by default. However, you might want to replace it to use other
# tools. (i.e. podman)
CONTAINER_TOOL ?= docker

# Setting SHELL to bash allows bash commands to be executed by recipes.
# Options are set to exit when a recipe line exits non-zero or a piped command fails.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

# The help target prints out all targets with their descriptions organized
# beneath their categories. The categories are represented by '##@' and the
# target descriptions by '##'. The awk command is responsible for reading the
# entire set of makefiles included in this invocation, looking for lines of the
# file as xyz: ## something, and then pretty-format the target and help. Then,
# if there's a line with ##@ something, that gets pretty-printed as a category.
# More info on the usage of ANSI control characters for terminal formatting:
# https://en.wikipedia.org/wiki/ANSI_escape_code#SGR_parameters
# More info on the awk command:
# http://linuxcommand.org/lc3_adv_awk.php

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate WebhookConfiguration, ClusterRoles (manager, agent) and CustomResourceDefinition objects.
	UPDATE_GENERATED=1 go test ./internal/webhook/v1beta1/ -run '^TestWebhookMarkers$$' -count=1 > /dev/null
	"$(CONTROLLER_GEN)" rbac:roleName=manager-role crd webhook paths="./api/...;./internal/controller/...;./internal/webhook/..." output:crd:artifacts:config=config/crd/bases
	"$(CONTROLLER_GEN)" rbac:roleName=agent-role paths="./internal/agent/..." output:rbac:artifacts:config=config/agent

.PHONY: generate
generate: controller-gen ## Generate code containing DeepCopy, DeepCopyInto, and DeepCopyObject method implementations.
	"$(CONTROLLER_GEN)" object:headerFile="hack/boilerplate.go.txt",year=$(YEAR) paths="./..."

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

.PHONY: test
test: manifests generate fmt vet kube-binaries test-unit test-alerts test-deploy test-e2e ## Run every test: unit, fuzz seed corpora, envtest suites, alerts, deployment manifests, then end-to-end on the local cluster.

.PHONY: test-unit
test-unit: manifests generate fmt vet kube-binaries ## Run unit tests, fuzz seed corpora and the envtest suites.
	KUBEBUILDER_ASSETS="$(KUBE_BIN_DIR)" go test $$(go list ./... | grep -v -e /test/e2e -e /test/deploy) -coverprofile cover.out

.PHONY: test-alerts
test-alerts: promtool ## Check the alerts (config/prometheus/rules.yaml) and the dashboard's queries with promtool, and run the alerts' unit tests (config/prometheus/tests).
	rm -rf .local/alerts && mkdir -p .local/alerts
	go run ./hack/promrules --rules config/prometheus/rules.yaml --dashboard config/grafana/tserver-operator.json \
		--out .local/alerts
	"$(PROMTOOL)" check rules --lint-fatal .local/alerts/rules.yaml .local/alerts/dashboard.yaml
	cp config/prometheus/tests/*_test.yaml .local/alerts/
	"$(PROMTOOL)" test rules .local/alerts/*_test.yaml

.PHONY: test-deploy
test-deploy: manifests kustomize install-helm kube-binaries check-chart ## Render config/default and the Helm chart, without and with the monitoring; a real API server must accept every object (dry run); run an agent under its rendered role and node restriction policy: the role must grant exactly what it uses (audit log), the policy must keep it to its own node.
	mkdir -p .local/deploy
	"$(KUSTOMIZE)" build $(KUSTOMIZE_CONFIG) > .local/deploy/kustomize.yaml
	{ cat .local/deploy/kustomize.yaml; echo "---"; "$(KUSTOMIZE)" build config/monitoring; } > .local/deploy/kustomize-monitoring.yaml
	"$(HELM)" template $(HELM_RELEASE) $(HELM_CHART_DIR) --namespace $(HELM_NAMESPACE) $(HELM_KUBE_FLAGS) \
		> .local/deploy/helm.yaml
	"$(HELM)" template $(HELM_RELEASE) $(HELM_CHART_DIR) --namespace $(HELM_NAMESPACE) $(HELM_KUBE_FLAGS) \
		--set prometheus.enabled=true --set grafana.enabled=true > .local/deploy/helm-monitoring.yaml
	crds="$$(go mod download -json github.com/cert-manager/cert-manager@$(CERT_MANAGER_VERSION) | sed -n 's/.*"Dir": "\(.*\)",/\1/p')/deploy/crds"; \
	monitoring_crds="$$(go mod download -json github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION) | sed -n 's/.*"Dir": "\(.*\)",/\1/p')/example/prometheus-operator-crd"; \
	for rendering in kustomize helm; do \
		echo "Checking the $$rendering rendering"; \
		RENDERED_MANIFESTS="$(CURDIR)/.local/deploy/$$rendering.yaml" CERT_MANAGER_CRDS="$$crds" \
			MONITORING_MANIFESTS="$(CURDIR)/.local/deploy/$$rendering-monitoring.yaml" PROMETHEUS_OPERATOR_CRDS="$$monitoring_crds" \
			KUBEBUILDER_ASSETS="$(KUBE_BIN_DIR)" KUBE_VERSION="$(KUBE_VERSION)" go test ./test/deploy/ -count=1 -v || exit 1; \
	done

.PHONY: test-compat
test-compat: ## Run the envtest suites, the deploy dry run and the end-to-end suite against another Kubernetes release, its binaries built into bin/k8s/<version>/: make test-compat KUBE_VERSION=v1.30.14 (docs/compatibility.md).
	@[ "$(origin KUBE_VERSION)" = "command line" ] || { echo "Name the release: make test-compat KUBE_VERSION=v1.30.14"; exit 1; }
	$(MAKE) kube-binaries test-unit test-deploy test-e2e KUBE_VERSION=$(KUBE_VERSION)

.PHONY: test-e2e
test-e2e: manifests generate kube-binaries images real-node-deps ## Run the end-to-end suite on a local cluster (kube-controller-manager, scheduler, kwok nodes and their agents, and a real node with the agent DaemonSet).
	KUBEBUILDER_ASSETS="$(KUBE_BIN_DIR)" IMAGE_DIR="$(IMAGE_DIR)" LOCAL_IMG="$(LOCAL_IMG)" go test ./test/e2e/ -timeout 30m -v -ginkgo.v \
		-ginkgo.timeout 28m

.PHONY: bench
bench: build kube-binaries ## Measure time to bound vs Kubernetes alone, leftovers, agent footprint, admission latency, node-loss recovery vs Kubernetes alone (see docs/performance.md).
	go build -o "$(LOCALBIN)/bench" ./hack/bench
	"$(LOCALBIN)/bench" --bin-dir "$(KUBE_BIN_DIR)" --operator "$(LOCALBIN)/tserver-operator" --agent "$(LOCALBIN)/tserver-agent" $(BENCH_ARGS)
	go test ./internal/webhook/v1beta1/ -run '^$$' -bench . -benchmem

.PHONY: chaos
chaos: build kube-binaries ## Kill agents, the manager and kube-controller-manager and restart kube-apiserver during a busy rollout; check nothing is lost (see docs/reliability.md; CHAOS_ARGS="--seed 7 --runs 5").
	go build -o "$(LOCALBIN)/chaos" ./hack/chaos
	"$(LOCALBIN)/chaos" --bin-dir "$(KUBE_BIN_DIR)" --operator "$(LOCALBIN)/tserver-operator" --agent "$(LOCALBIN)/tserver-agent" $(CHAOS_ARGS)

.PHONY: fuzz
fuzz: ## Fuzz the TServer validator, the expansion of TServers and their status, and the agent's path handling for FUZZTIME each (default 1m).
	go test ./internal/webhook/v1beta1/ -run '^$$' -fuzz FuzzValidateTServer -fuzztime $(FUZZTIME)
	go test ./internal/controller/ -run '^$$' -fuzz '^FuzzBuildStatefulSet$$' -fuzztime $(FUZZTIME)
	go test ./internal/controller/ -run '^$$' -fuzz '^FuzzComputeStatus$$' -fuzztime $(FUZZTIME)
	go test ./internal/hostfs/ -run '^$$' -fuzz FuzzPaths -fuzztime $(FUZZTIME)

.PHONY: lint
lint: golangci-lint ## Run golangci-lint linter
	"$(GOLANGCI_LINT)" run

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint linter and perform fixes
	"$(GOLANGCI_LINT)" run --fix

.PHONY: lint-config
lint-config: golangci-lint ## Verify golangci-lint linter configuration
	"$(GOLANGCI_LINT)" config verify

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager (bin/tserver-operator) and the node agent (bin/tserver-agent).
	CGO_ENABLED=0 go build -trimpath -o bin/tserver-operator ./cmd
	CGO_ENABLED=0 go build -trimpath -o bin/tserver-agent ./cmd/agent

# Images for the local cluster's real node, built without a container engine (hack/image): the
# operator's (the binaries the Dockerfile ships, on an empty base), the pod sandbox, and the
# end-to-end tests' workload (as uid 1000 and as uid 2000).
IMAGE_DIR ?= $(LOCALBIN)/images
LOCAL_IMG ?= localhost/tserver-operator:dev
.PHONY: images
images: build kustomize ## Build the image archives the local cluster's real node imports (bin/images/), and the deployment its agent DaemonSet comes from.
	mkdir -p "$(IMAGE_DIR)"
	"$(KUSTOMIZE)" build $(KUSTOMIZE_CONFIG) > "$(IMAGE_DIR)/deploy.yaml"
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/pause ./hack/image/pause
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/volume-writer ./test/images/volume-writer
	go run ./hack/image --tag $(LOCAL_IMG) --output $(IMAGE_DIR)/tserver-operator.tar --user 65532:65532 \
		--file /tserver-operator=bin/tserver-operator --file /tserver-agent=bin/tserver-agent --entrypoint /tserver-operator
	go run ./hack/image --tag localhost/pause:local --output $(IMAGE_DIR)/pause.tar --file /pause=$(LOCALBIN)/pause \
		--entrypoint /pause --user 65535:65535
	go run ./hack/image --tag localhost/volume-writer:uid-1000 --output $(IMAGE_DIR)/volume-writer-1000.tar \
		--file /volume-writer=$(LOCALBIN)/volume-writer --entrypoint /volume-writer --user 1000:0
	go run ./hack/image --tag localhost/volume-writer:uid-2000 --output $(IMAGE_DIR)/volume-writer-2000.tar \
		--file /volume-writer=$(LOCALBIN)/volume-writer --entrypoint /volume-writer --user 2000:2000

# What the real node runs on, from Debian's packages: installed when missing, as root.
REAL_NODE_PACKAGES = containerd runc containernetworking-plugins iptables
.PHONY: real-node-deps
real-node-deps: ## Install what the local cluster's real node runs on (Debian's containerd, runc, CNI plugins and iptables) if missing.
	@if command -v containerd >/dev/null && command -v runc >/dev/null && command -v iptables >/dev/null && \
		{ [ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ]; }; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "A real node needs $(REAL_NODE_PACKAGES) (Debian packages); install them as root: the real-node tests say they are skipped"; \
		exit 0; fi; \
	echo "Installing $(REAL_NODE_PACKAGES) for the real node"; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(REAL_NODE_PACKAGES) || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(REAL_NODE_PACKAGES); }

.PHONY: run
run: manifests generate fmt vet build kube-binaries $(if $(filter-out 0,$(REAL_NODES)),images real-node-deps) ## Run a local cluster with the operator until Ctrl-C (REAL_NODES=1: and a real node; USE_EXISTING_CLUSTER=true: only the manager, against the current kubeconfig).
ifeq ($(USE_EXISTING_CLUSTER),true)
	go run ./cmd
else
	go build -o "$(LOCALBIN)/run-local" ./hack/run-local
	"$(LOCALBIN)/run-local" --bin-dir "$(KUBE_BIN_DIR)" --operator "$(LOCALBIN)/tserver-operator" --agent "$(LOCALBIN)/tserver-agent" --state-dir .local --nodes $(NODES) --agents=$(AGENTS) \
		--real-nodes $(REAL_NODES) --image-dir "$(IMAGE_DIR)" --agent-image $(LOCAL_IMG) --deployment "$(IMAGE_DIR)/deploy.yaml"
endif

# If you wish to build the manager image targeting other platforms you can use the --platform flag.
# (i.e. docker build --platform linux/arm64). However, you must enable docker buildKit for it.
# More info: https://docs.docker.com/develop/develop-images/build_enhancements/
# Override BASE_IMAGE to build from another registry, e.g.
# make docker-build IMG=<img> BASE_IMAGE=docker.io/library/golang:1.26
.PHONY: docker-build
docker-build: ## Build docker image with the manager.
	$(CONTAINER_TOOL) build $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t ${IMG} .

.PHONY: docker-push
docker-push: ## Push docker image with the manager.
	$(CONTAINER_TOOL) push ${IMG}

# PLATFORMS defines the target platforms for the manager image be built to provide support to multiple
# architectures. (i.e. make docker-buildx IMG=myregistry/mypoperator:0.0.1). To use this option you need to:
# - be able to use docker buildx. More info: https://docs.docker.com/build/buildx/
# - have enabled BuildKit. More info: https://docs.docker.com/develop/develop-images/build_enhancements/
# - be able to push the image to your registry (i.e. if you do not set a valid value via IMG=<myregistry/image:<tag>> then the export will fail)
# To adequately provide solutions that are compatible with multiple platforms, you should consider using this option.
PLATFORMS ?= linux/arm64,linux/amd64,linux/s390x,linux/ppc64le
.PHONY: docker-buildx
docker-buildx: ## Build and push docker image for the manager for cross-platform support
	# copy existing Dockerfile and insert --platform=${BUILDPLATFORM} into Dockerfile.cross, and preserve the original Dockerfile
	sed -e '1 s/\(^FROM\)/FROM --platform=\$$\{BUILDPLATFORM\}/; t' -e ' 1,// s//FROM --platform=\$$\{BUILDPLATFORM\}/' Dockerfile > Dockerfile.cross
	- $(CONTAINER_TOOL) buildx create --name tserver-operator-builder
	$(CONTAINER_TOOL) buildx use tserver-operator-builder
	- $(CONTAINER_TOOL) buildx build --push --platform=$(PLATFORMS) $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) --tag ${IMG} -f Dockerfile.cross .
	- $(CONTAINER_TOOL) buildx rm tserver-operator-builder
	rm Dockerfile.cross

.PHONY: build-installer
build-installer: manifests generate kustomize ## Generate a consolidated YAML with CRDs and deployment.
	mkdir -p dist
	cd config/manager && "$(KUSTOMIZE)" edit set image controller=${IMG}
	cd config/agent && "$(KUSTOMIZE)" edit set image controller=${IMG}
	"$(KUSTOMIZE)" build config/default > dist/install.yaml

##@ Deployment

# What `make deploy` applies: config/default, or config/overlays/before-1.36 (without the
# claim-labelling MutatingAdmissionPolicy) on a cluster that does not serve that API
# (Kubernetes 1.30 to 1.35). Asked of the cluster only when a target needs it.
# (Asked afresh, not of kubectl's discovery cache, which may describe the cluster before an upgrade.)
DEPLOY_CONFIG ?= $(shell "$(KUBECTL)" get --raw /apis/admissionregistration.k8s.io/v1 2>/dev/null | \
	grep -q '"name":"mutatingadmissionpolicies"' && echo config/default || echo config/overlays/before-1.36)

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install the CRDs and the StorageClass t-storage-class into the K8s cluster specified in ~/.kube/config.
	"$(KUSTOMIZE)" build config/crd | "$(KUBECTL)" apply -f -
	"$(KUSTOMIZE)" build config/storageclass | "$(KUBECTL)" apply -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Uninstall the CRDs and the StorageClass from the K8s cluster specified in ~/.kube/config. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	"$(KUSTOMIZE)" build config/crd | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -
	"$(KUSTOMIZE)" build config/storageclass | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy controller to the K8s cluster specified in ~/.kube/config (config/default, or config/overlays/before-1.36 where MutatingAdmissionPolicy is not served).
	cd config/manager && "$(KUSTOMIZE)" edit set image controller=${IMG}
	cd config/agent && "$(KUSTOMIZE)" edit set image controller=${IMG}
	@echo "Deploying $(DEPLOY_CONFIG)"
	"$(KUSTOMIZE)" build $(DEPLOY_CONFIG) | "$(KUBECTL)" apply -f -

.PHONY: deploy-config
deploy-config: ## Print the kustomization make deploy would apply to the current cluster.
	@echo $(DEPLOY_CONFIG)

.PHONY: undeploy
undeploy: kustomize ## Undeploy controller from the K8s cluster specified in ~/.kube/config. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	"$(KUSTOMIZE)" build $(DEPLOY_CONFIG) | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

## Location to install dependencies to
LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p "$(LOCALBIN)"

## Tool Binaries
KUBECTL ?= kubectl
KUSTOMIZE ?= $(LOCALBIN)/kustomize
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT = $(LOCALBIN)/golangci-lint
PROMTOOL ?= $(LOCALBIN)/promtool

## Tool Versions
KUSTOMIZE_VERSION ?= v5.8.1
CONTROLLER_TOOLS_VERSION ?= v0.23.0

# The Kubernetes binaries (tests, `make run`) are built from Go modules, never downloaded.
# KUBE_VERSION follows k8s.io/api in go.mod (v0.X.Y -> v1.X.Y), so they always match the client.
KUBE_VERSION ?= $(shell v='$(call gomodver,k8s.io/api)'; \
  [ -n "$$v" ] || { echo "Set KUBE_VERSION manually (k8s.io/api has no tag)" >&2; exit 1; }; \
  printf '%s\n' "$$v" | sed -E 's/^v0\./v1./')
ETCD_VERSION ?= v3.5.35
# cert-manager's CRDs (from its Go module) let test-deploy dry-run the webhook certificates.
CERT_MANAGER_VERSION ?= v1.21.2
# prometheus-operator's CRDs (from its Go module) let test-deploy dry-run the ServiceMonitors and the
# PrometheusRule of config/monitoring and of the chart with prometheus.enabled.
PROMETHEUS_OPERATOR_VERSION ?= v0.85.0
# promtool, built from Prometheus' Go module (v0.316.0 is Prometheus 3.16.0), checks and unit-tests the alerts.
PROMTOOL_VERSION ?= v0.316.0
KWOK_VERSION ?= v0.8.0
KUBE_BIN_DIR ?= $(LOCALBIN)/k8s/$(KUBE_VERSION)
# What `helm template` renders for, as `helm install` learns it from the cluster: the release, and
# MutatingAdmissionPolicy where that release serves it (1.36 and later).
KUBE_MINOR = $(word 2,$(subst ., ,$(KUBE_VERSION)))
SERVES_MAP = $(shell [ "$(KUBE_MINOR)" -ge 36 ] 2>/dev/null && echo y)
HELM_KUBE_FLAGS = --kube-version $(KUBE_VERSION) \
	$(if $(SERVES_MAP),--api-versions admissionregistration.k8s.io/v1/MutatingAdmissionPolicy)
# What test-deploy renders with kustomize for that release (make deploy asks the cluster).
KUSTOMIZE_CONFIG = $(if $(SERVES_MAP),config/default,config/overlays/before-1.36)
FUZZTIME ?= 1m
# NODES is how many simulated nodes `make run` starts.
NODES ?= 3
# AGENTS=false makes `make run` start no node agents, to run them by hand.
AGENTS ?= true
# REAL_NODES=1 makes `make run` start a real node too: a kubelet with containerd and runc, its agent
# the DaemonSet (needs root; see README).
REAL_NODES ?= 0

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Download kustomize locally if necessary.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Download controller-gen locally if necessary.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: promtool
promtool: $(PROMTOOL) ## Build promtool into bin/ from Prometheus' Go module (checks and unit-tests the alert rules).
$(PROMTOOL): $(LOCALBIN)
	$(call go-install-tool,$(PROMTOOL),github.com/prometheus/prometheus/cmd/promtool,$(PROMTOOL_VERSION))

.PHONY: kube-binaries
kube-binaries: ## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from Go modules (reused when present).
	@OUT_DIR="$(KUBE_BIN_DIR)" KUBE_VERSION="$(KUBE_VERSION)" ETCD_VERSION="$(ETCD_VERSION)" \
		KWOK_VERSION="$(KWOK_VERSION)" hack/build-kube-binaries.sh

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Build golangci-lint with its logcheck plugin (versions in hack/golangci-lint/go.mod).
$(GOLANGCI_LINT): hack/golangci-lint/go.mod hack/golangci-lint/main.go | $(LOCALBIN)
	@echo "Building golangci-lint (versions in hack/golangci-lint/go.mod)"
	rm -f "$(GOLANGCI_LINT)"
	cd hack/golangci-lint && go build -o "$(GOLANGCI_LINT)" .

# go-install-tool will 'go install' any package with custom target and name of binary, if it doesn't exist
# $1 - target path with name of binary
# $2 - package url which can be installed
# $3 - specific version of package
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$(1)-$(3)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Downloading $${package}" ;\
rm -f "$(1)" ;\
GOBIN="$(LOCALBIN)" go install $${package} ;\
mv "$(LOCALBIN)/$$(basename "$(1)")" "$(1)-$(3)" ;\
} ;\
ln -sf "$$(realpath "$(1)-$(3)")" "$(1)"
endef

define gomodver
$(shell go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' $(1) 2>/dev/null)
endef

##@ Helm Deployment

## Helm, built from its Go module into bin/ (version HELM_VERSION)
HELM ?= $(LOCALBIN)/helm
HELM_VERSION ?= v3.22.0
## Namespace to deploy the Helm release
HELM_NAMESPACE ?= tserver-operator-system
## Name of the Helm release
HELM_RELEASE ?= tserver-operator
## Path to the Helm chart directory
HELM_CHART_DIR ?= dist/chart
## Additional arguments to pass to helm commands
HELM_EXTRA_ARGS ?=
## kubebuilder, whose helm plugin generates the chart
KUBEBUILDER ?= $(LOCALBIN)/kubebuilder
KUBEBUILDER_VERSION ?= v4.16.0

.PHONY: install-helm
install-helm: $(HELM) ## Build Helm into bin/ from its Go module.
$(HELM): $(LOCALBIN)
	$(call go-install-tool,$(HELM),helm.sh/helm/v3/cmd/helm,$(HELM_VERSION))

$(KUBEBUILDER): $(LOCALBIN)
	$(call go-install-tool,$(KUBEBUILDER),sigs.k8s.io/kubebuilder/v4,$(KUBEBUILDER_VERSION))

# chart-files copies into the chart at $(1) the files of config/ that its hand-kept
# templates/monitoring renders: the alerts and the dashboard.
define chart-files
mkdir -p "$(1)/files"
cp config/prometheus/rules.yaml config/grafana/tserver-operator.json "$(1)/files/"
endef

.PHONY: helm-chart
helm-chart: manifests kustomize $(KUBEBUILDER) ## Regenerate dist/chart from config/helm with kubebuilder's helm plugin (templates/agent, templates/monitoring and values.yaml are kept; files/ is copied from config/).
	mkdir -p .local/helm
	"$(KUSTOMIZE)" build config/helm > .local/helm/install.yaml
	"$(KUBEBUILDER)" edit --plugins=helm/v2-alpha --manifests .local/helm/install.yaml --output-dir dist
	$(call chart-files,dist/chart)

.PHONY: check-chart
check-chart: manifests kustomize $(KUBEBUILDER) ## Fail if dist/chart is not what helm-chart generates from config/ (templates/agent, templates/monitoring, Chart.yaml and values.yaml are hand-kept).
	rm -rf .local/chart-check && mkdir -p .local/chart-check
	"$(KUSTOMIZE)" build config/helm > .local/chart-check/install.yaml
	# The plugin records its paths in PROJECT: keep the ones helm-chart uses.
	cp PROJECT .local/chart-check/PROJECT; \
	"$(KUBEBUILDER)" edit --plugins=helm/v2-alpha --manifests .local/chart-check/install.yaml --output-dir .local/chart-check > /dev/null; \
	status=$$?; cp .local/chart-check/PROJECT PROJECT; exit $$status
	$(call chart-files,.local/chart-check/chart)
	diff -r --exclude=values.yaml --exclude=Chart.yaml --exclude=agent --exclude=monitoring .local/chart-check/chart $(HELM_CHART_DIR) || \
		{ echo "$(HELM_CHART_DIR) is not what config/ generates: run make helm-chart"; exit 1; }

.PHONY: helm-deploy
helm-deploy: install-helm ## Deploy the manager and agents to the K8s cluster via Helm. Specify an image with IMG.
	IMG="$(IMG)"; "$(HELM)" upgrade --install $(HELM_RELEASE) $(HELM_CHART_DIR) \
		--namespace $(HELM_NAMESPACE) \
		--create-namespace \
		--set manager.image.repository=$${IMG%:*} \
		--set manager.image.tag=$${IMG##*:} \
		--wait \
		--timeout 5m \
		$(HELM_EXTRA_ARGS)

.PHONY: helm-uninstall
helm-uninstall: install-helm ## Uninstall the Helm release from the K8s cluster.
	"$(HELM)" uninstall $(HELM_RELEASE) --namespace $(HELM_NAMESPACE)

.PHONY: helm-status
helm-status: install-helm ## Show Helm release status.
	"$(HELM)" status $(HELM_RELEASE) --namespace $(HELM_NAMESPACE)

.PHONY: helm-history
helm-history: install-helm ## Show Helm release history.
	"$(HELM)" history $(HELM_RELEASE) --namespace $(HELM_NAMESPACE)

.PHONY: helm-rollback
helm-rollback: install-helm ## Rollback to previous Helm release.
	"$(HELM)" rollback $(HELM_RELEASE) --namespace $(HELM_NAMESPACE)
