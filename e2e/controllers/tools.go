//go:build tools

// Package tools pins the controllers of other projects that the e2e suite builds from this module.
package tools

import (
	_ "github.com/fluxcd/kustomize-controller"
	_ "github.com/fluxcd/source-controller"
	_ "sigs.k8s.io/jobset"
)
