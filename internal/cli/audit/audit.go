// Package audit groups the `operator audit` commands.
package audit

import (
	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/audit/list"
	"github.com/tikvops/operator/internal/cli/audit/verify"
	"github.com/tikvops/operator/internal/cli/cmdutil"
)

// NewCmdAudit returns `operator audit` with its subcommands.
func NewCmdAudit(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit <command>",
		Short: "List and verify the append-only, hash-chained audit trail",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(list.NewCmdList(f, nil), verify.NewCmdVerify(f, nil))
	return cmd
}
