// Package rediagnose implements `operator tickets rediagnose ID`.
package rediagnose

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// Options are the parsed flags of `operator tickets rediagnose`.
type Options struct {
	IO     *iostreams.IOStreams
	Store  func(ctx context.Context) (*store.Store, error)
	Now    func() time.Time
	Format string
	ID     int64
	Reason string
	As     string
}

// NewCmdRediagnose returns the command; runF replaces the run in tests.
func NewCmdRediagnose(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IOStreams, Store: f.Store, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "rediagnose ID",
		Short: "Ask for a new diagnosis of a diagnosed ticket (the current one is kept in its history)",
		Long: `Moves a diagnosed ticket back to open so that the daemon diagnoses it again with
the evidence it has now. The current diagnosis is archived with the reason and
stays visible in the ticket's diagnosis history. Only diagnosed tickets can be
re-diagnosed: an open ticket is already waiting for a diagnosis, a resolved one
is final (exit 4).`,
		Example: `  operator tickets rediagnose 3 --reason "store 4 is Down now, not partitioned"`,
		Args:    cmdutil.ExactID("ticket"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Format = f.Format()
			id, err := cmdutil.ParseID("ticket", args[0])
			if err != nil {
				return err
			}
			opts.ID = id
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why a new diagnosis is needed (recorded in the history)")
	cmd.Flags().StringVar(&opts.As, "as", "", "who asks (default: your OS user)")
	return cmd
}

func run(ctx context.Context, opts *Options) error {
	who := opts.As
	if who == "" {
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
	}
	reason := "requested by " + who
	if opts.Reason != "" {
		reason += ": " + opts.Reason
	}
	st, err := opts.Store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RequestRediagnosis(ctx, opts.ID, reason, opts.Now()); err != nil {
		var te *ticket.ErrTransition
		if errors.As(err, &te) {
			return &cmdutil.StateError{Msg: fmt.Sprintf("ticket %d is %s; only diagnosed tickets can be re-diagnosed", te.ID, te.From), Err: err}
		}
		return cmdutil.Clean("ticket", opts.ID, err)
	}
	if opts.Format == cmdutil.FormatJSON {
		return cmdutil.PrintJSON(opts.IO.Out, map[string]any{"ticket_id": opts.ID, "status": "open", "reason": reason})
	}
	fmt.Fprintf(opts.IO.Out, "ticket %d is open again for a new diagnosis (%s)\n", opts.ID, reason)
	return nil
}
