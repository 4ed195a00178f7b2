//go:build tools

// The binaries scripts/cluster.sh builds from this module (never compiled itself: the build tag
// keeps it out; it only makes `go mod tidy` record every module those commands need).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
