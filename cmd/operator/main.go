// Command operator watches a TiKV cluster through PD, opens tickets for
// violated invariants, diagnoses them, and executes remediation actions
// only after a human approves them.
package main

import (
	"os"

	"github.com/tikvops/operator/internal/cli"
)

func main() { os.Exit(cli.Main()) }
