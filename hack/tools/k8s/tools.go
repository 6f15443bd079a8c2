//go:build tools

// Package tools pins the Kubernetes control-plane binaries that envtest and
// the end-to-end tests run: kube-apiserver and kube-controller-manager.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
