// Package tickets groups the `operator tickets` commands.
package tickets

import (
	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/tickets/list"
	"github.com/tikvops/operator/internal/cli/tickets/rediagnose"
	"github.com/tikvops/operator/internal/cli/tickets/show"
)

// NewCmdTickets returns `operator tickets` with its subcommands.
func NewCmdTickets(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "tickets <command>",
		Aliases: []string{"ticket"},
		Short:   "List and show tickets (one per violated invariant and subject)",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(list.NewCmdList(f, nil), show.NewCmdShow(f, nil), rediagnose.NewCmdRediagnose(f, nil))
	return cmd
}
