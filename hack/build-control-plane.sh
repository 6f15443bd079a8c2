#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager)
# and the kubectl of the same version from the Go module proxy into
# bin/k8s/<version>/, once. The versions are the
# ones pinned by hack/tools/{k8s,etcd}/go.mod; a present, complete directory is
# reused as it is.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
module_version() { # module_version DIR MODULE: the version DIR/go.mod requires
	(cd "$1" && go list -m -f '{{.Version}}' "$2")
}
k8s_version="$(module_version "$root/hack/tools/k8s" k8s.io/kubernetes)"
etcd_version="$(module_version "$root/hack/tools/etcd" go.etcd.io/etcd/server/v3)"
out="${1:-$root/bin/k8s/${k8s_version#v}}"
mkdir -p "$out"

if [[ -x "$out/etcd" && -x "$out/kube-apiserver" && -x "$out/kube-controller-manager" && -x "$out/kubectl" ]]; then
	echo "control plane ${k8s_version} (etcd ${etcd_version}) already in ${out#"$root"/}"
	exit 0
fi

# The numbers Kubernetes' own build stamps in, so discovery and
# `kubectl version` report a real server version.
minor="${k8s_version#v*.}"; minor="${minor%%.*}"
major="${k8s_version#v}"; major="${major%%.*}"
pkg=k8s.io/component-base/version
ldflags="-s -w \
 -X ${pkg}.gitVersion=${k8s_version} \
 -X ${pkg}.gitMajor=${major} \
 -X ${pkg}.gitMinor=${minor} \
 -X ${pkg}.gitTreeState=clean \
 -X ${pkg}.buildDate=1970-01-01T00:00:00Z"

export CGO_ENABLED=0 GOFLAGS=-mod=mod
started=$(date +%s)
if [[ ! -x "$out/etcd" ]]; then
	echo "building etcd ${etcd_version} into ${out#"$root"/} ..."
	(cd "$root/hack/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3)
	mv "$out/etcd.tmp" "$out/etcd"
fi
for cmd in kube-apiserver kube-controller-manager kubectl; do
	[[ -x "$out/$cmd" ]] && continue
	echo "building ${cmd} ${k8s_version} into ${out#"$root"/} (the first build takes several minutes) ..."
	(cd "$root/hack/tools/k8s" && go build -trimpath -ldflags "$ldflags" -o "$out/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
	mv "$out/$cmd.tmp" "$out/$cmd"
done
echo "control plane built in $(( $(date +%s) - started ))s"
