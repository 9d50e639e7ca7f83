//go:build tools

// Package kwok pins the kwok controller that plays the kubelet of the e2e suite's fake nodes.
package kwok

import _ "sigs.k8s.io/kwok/cmd/kwok"
