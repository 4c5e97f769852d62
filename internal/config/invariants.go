package config

// InvariantConfig is a placeholder until package invariant's Config lands.
type InvariantConfig struct{}

// DefaultInvariants returns the invariant defaults.
func DefaultInvariants() InvariantConfig { return InvariantConfig{} }
