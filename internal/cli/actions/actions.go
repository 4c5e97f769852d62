// Package actions groups the `operator actions` commands.
package actions

import (
	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/actions/approve"
	"github.com/tikvops/operator/internal/cli/actions/list"
	"github.com/tikvops/operator/internal/cli/actions/propose"
	"github.com/tikvops/operator/internal/cli/actions/reject"
	"github.com/tikvops/operator/internal/cli/actions/revert"
	"github.com/tikvops/operator/internal/cli/actions/show"
	"github.com/tikvops/operator/internal/cli/actions/types"
	"github.com/tikvops/operator/internal/cli/cmdutil"
)

// NewCmdActions returns `operator actions` with its subcommands.
func NewCmdActions(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "actions <command>",
		Aliases: []string{"action"},
		Short:   "List, show, propose, dry-run, approve and reject actions; cancel or extend scheduled reverts",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		list.NewCmdList(f, nil),
		show.NewCmdShow(f, nil),
		approve.NewCmdApprove(f, nil),
		reject.NewCmdReject(f, nil),
		types.NewCmdTypes(f, nil),
		propose.NewCmdPropose(f, nil),
		revert.NewCmdCancel(f, nil),
		revert.NewCmdExtend(f, nil),
	)
	return cmd
}
