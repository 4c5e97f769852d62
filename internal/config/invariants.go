package config

import "github.com/tikvops/operator/internal/invariant"

// DefaultInvariants returns the invariant thresholds' defaults
// (invariant.DefaultConfig).
func DefaultInvariants() invariant.Config { return invariant.DefaultConfig() }
