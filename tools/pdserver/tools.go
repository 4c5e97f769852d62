//go:build tools

// Package pdserver pins the PD server module that tests and the demo run.
// It is a separate module so that PD's server packages never enter the
// operator's own go.mod. Build with scripts/build-pd.sh.
package pdserver

import _ "github.com/tikv/pd/cmd/pd-server"
