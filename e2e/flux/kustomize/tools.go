//go:build tools

// Package tools pins the Flux controller this module builds.
package tools

import _ "github.com/fluxcd/kustomize-controller"
