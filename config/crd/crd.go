// Package crd embeds the CRDs controller-gen writes into bases/, so the
// manager can check the installed CRDs against those it was built with
// (internal/crds).
package crd

import "embed"

// Bases holds bases/*.yaml.
//
//go:embed bases/*.yaml
var Bases embed.FS
