//go:build tools

// Package tools pins the etcd server that the local control plane runs.
// etcd 3.6 lives in its own module because Kubernetes 1.37 requires the etcd
// 3.7 client libraries, which would otherwise lift the server to 3.7 too.
package tools

import _ "go.etcd.io/etcd/server/v3"
