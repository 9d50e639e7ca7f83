//go:build tools

// Package controlplane pins the Kubernetes release the e2e suite runs against, and the kwok
// controller that plays the kubelet of its fake nodes. It is test tooling only: build.sh builds
// these commands into .e2e/bin/<version>/.
package controlplane

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
