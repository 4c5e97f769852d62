// Package notifications implements `operator notifications list`: the
// outbox's deliveries, read from the database file.
package notifications

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/store"
)

// NewCmdNotifications returns `operator notifications` with `list`.
func NewCmdNotifications(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notifications <command>",
		Short: "Notification deliveries (the outbox): pending, delivered, dead",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var (
		dead  bool
		limit int
	)
	list := &cobra.Command{
		Use:   "list [--dead]",
		Short: "List notification deliveries, newest event first",
		Long: `List notification deliveries, newest event first: one row per event and sink,
with its status (pending, sending, delivered, dead), attempts and last error.
--dead shows only the dead letters (out of attempts or refused by the sink).`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := f.Store(cmd.Context())
			if err != nil {
				return err
			}
			fl := store.DeliveryFilter{Limit: limit}
			if dead {
				fl.Statuses = []string{store.DeliveryDead}
			}
			ds, err := st.Deliveries(cmd.Context(), fl)
			if err != nil {
				return err
			}
			out := f.IOStreams.Out
			if f.Format() == "json" {
				if ds == nil {
					ds = []store.Delivery{}
				}
				return cmdutil.PrintJSON(out, ds)
			}
			if len(ds) == 0 {
				fmt.Fprintln(out, "No notification deliveries.")
				return nil
			}
			now := f.Now()
			t := cmdutil.NewTable(out, "SEQ", "EVENT", "KIND", "SINK", "STATUS", "ATTEMPTS", "AGE", "LAST ERROR")
			for _, d := range ds {
				t.Row(strconv.FormatInt(d.Event.Seq, 10), cmdutil.Cell(d.Event.Key), d.Event.Kind, cmdutil.Cell(d.Sink), d.Status,
					strconv.Itoa(d.Attempts), cmdutil.Ago(d.Event.Time, now), cmdutil.Truncate(cmdutil.Cell(d.LastError), 60))
			}
			return t.Flush()
		},
	}
	list.Flags().BoolVar(&dead, "dead", false, "only dead deliveries")
	list.Flags().IntVar(&limit, "limit", 100, "show at most this many rows")
	cmd.AddCommand(list)
	return cmd
}
