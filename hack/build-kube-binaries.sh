#!/usr/bin/env bash
# Builds the Kubernetes binaries the tests and `make run` need, from Go modules only:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, the kubelet (for the local cluster's
# real node) and kwok (with its stage configs).
#
# Nothing is downloaded from anywhere but the Go module proxy, so it works where setup-envtest
# cannot. A binary already built for the requested version is reused.
#
# Inputs (environment): OUT_DIR, KUBE_VERSION (v1.x.y), ETCD_VERSION (v3.5.x), KWOK_VERSION.
set -euo pipefail

: "${OUT_DIR:?OUT_DIR must name the directory to build into}"
: "${KUBE_VERSION:?KUBE_VERSION must be set, e.g. v1.37.2}"
: "${ETCD_VERSION:?ETCD_VERSION must be set, e.g. v3.5.35}"
: "${KWOK_VERSION:?KWOK_VERSION must be set, e.g. v0.8.0}"

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
SRC_DIR="$OUT_DIR/.src"
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"

# built NAME VERSION: true when OUT_DIR/NAME was built from VERSION.
built() {
	[ -x "$OUT_DIR/$1" ] && [ "$(cat "$OUT_DIR/.$1.version" 2>/dev/null)" = "$2" ]
}

stamp() {
	echo "$2" >"$OUT_DIR/.$1.version"
	echo "Built $OUT_DIR/$1 ($2)"
}

build_etcd() {
	built etcd "$ETCD_VERSION" && return
	echo "Building etcd $ETCD_VERSION from Go modules (first time only)..."
	local dir="$SRC_DIR/etcd"
	rm -rf "$dir" && mkdir -p "$dir"
	cat >"$dir/go.mod" <<MOD
module tserver-operator.local/etcd

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

tool go.etcd.io/etcd/server/v3
MOD
	(cd "$dir" && go mod tidy && go build -trimpath -ldflags='-s -w' -o "$OUT_DIR/etcd" go.etcd.io/etcd/server/v3)
	stamp etcd "$ETCD_VERSION"
}

build_kube() {
	local missing=()
	for b in kube-apiserver kube-controller-manager kube-scheduler kubelet; do
		built "$b" "$KUBE_VERSION" || missing+=("$b")
	done
	[ ${#missing[@]} -eq 0 ] && return
	echo "Building ${missing[*]} $KUBE_VERSION from Go modules (first time only, several minutes on 2 cores)..."
	local dir="$SRC_DIR/kubernetes"
	rm -rf "$dir" && mkdir -p "$dir"
	# k8s.io/kubernetes replaces its staging modules with local paths; a consumer must replace
	# each of them with the published module of the matching version.
	local gomod
	gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
	{
		echo "module tserver-operator.local/kubernetes"
		echo
		echo "go 1.26"
		echo
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		echo
		echo "replace ("
		sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/src/.*#\t\1 => \1 '"$STAGING_VERSION"'#p' "$gomod"
		echo ")"
		echo
		echo "tool ("
		for b in "${missing[@]}"; do echo "	k8s.io/kubernetes/cmd/$b"; done
		echo ")"
	} >"$dir/go.mod"
	local ver="k8s.io/component-base/version" cver="k8s.io/client-go/pkg/version"
	local minor="${KUBE_VERSION#v1.}"
	minor="${minor%%.*}"
	local ldflags="-s -w"
	for p in "$ver" "$cver"; do
		ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
	done
	(cd "$dir" && go mod tidy)
	for b in "${missing[@]}"; do
		(cd "$dir" && go build -trimpath -ldflags="$ldflags" -o "$OUT_DIR/$b" "k8s.io/kubernetes/cmd/$b")
		stamp "$b" "$KUBE_VERSION"
	done
}

build_kwok() {
	built kwok "$KWOK_VERSION" && [ -d "$OUT_DIR/kwok-stages" ] && return
	echo "Building kwok $KWOK_VERSION from Go modules (first time only)..."
	GOFLAGS= GOBIN="$OUT_DIR" go install -trimpath -ldflags='-s -w' "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
	# kwok simulates node and pod lifecycles from "stage" configs shipped in its module.
	local moddir
	moddir=$(GOFLAGS= go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
	# Only the stage YAMLs: the module's Go files would become packages of this module under bin/.
	rm -rf "$OUT_DIR/kwok-stages"
	(cd "$moddir/kustomize/stage" && find . -name '*.yaml' ! -name kustomization.yaml ! -path '*/testdata/*') |
		while read -r f; do
			mkdir -p "$OUT_DIR/kwok-stages/$(dirname "$f")"
			cp "$moddir/kustomize/stage/$f" "$OUT_DIR/kwok-stages/$f"
		done
	chmod -R u+w "$OUT_DIR/kwok-stages"
	stamp kwok "$KWOK_VERSION"
}

build_etcd
build_kube
build_kwok
rm -rf "$SRC_DIR"
