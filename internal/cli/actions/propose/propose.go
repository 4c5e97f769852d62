// Package propose implements `operator actions propose TYPE --param k=v
// ... [--ticket ID] --reason TEXT`: a person proposes any catalog action,
// which someone else then approves under the same policy.
package propose

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/safetext"
)

// Gate proposes actions: the daemon's API (api.Client).
type Gate interface {
	Propose(ctx context.Context, req api.ProposeRequest) (action.Proposal, error)
}

// ProposeOptions are the parsed flags of `operator actions propose`.
type ProposeOptions struct {
	IO      *iostreams.IOStreams
	Config  func() (config.Config, error)
	NewGate func(cfg config.Config) (Gate, error)
	Format  string

	ActionType string
	// Params is the JSON object built from --param k=v.
	Params   json.RawMessage
	TicketID int64
	Reason   string
}

// NewCmdPropose returns the command; runF replaces proposeRun in tests.
func NewCmdPropose(f *cmdutil.Factory, runF func(context.Context, *ProposeOptions) error) *cobra.Command {
	opts := &ProposeOptions{IO: f.IOStreams, Config: f.Config,
		NewGate: func(cfg config.Config) (Gate, error) { return f.Daemon(cfg) }}
	var params []string
	cmd := &cobra.Command{
		Use:   "propose TYPE --param k=v ... [--ticket ID] --reason TEXT",
		Short: "Propose a catalog action yourself; someone else approves it",
		Long: `Propose any action of the catalog (see operator actions types) with its
params. The daemon validates the type and params, records you (your
authenticated identity) as the proposer and keeps the proposal until
someone else approves it: nobody approves their own proposal. Without
--ticket the proposal gets a manual ticket of its own.

A value is a JSON number, true/false, a JSON array or object, or else a
string: --param store_id=4 --param duration=2h --param type=add-peer.`,
		Example: `  operator actions propose resume_scheduler --param name=balance-leader-scheduler --ticket 3 --reason "the diagnosis names the paused scheduler"
  operator actions propose evict_leader --param store_id=4 --param duration=2h --reason "restart tikv-4 for the kernel upgrade"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Format = f.Format()
			opts.ActionType = strings.TrimSpace(args[0])
			raw, err := ParseParams(params)
			if err != nil {
				return err
			}
			opts.Params = raw
			opts.Reason = strings.TrimSpace(opts.Reason)
			if opts.Reason == "" {
				return cmdutil.FlagErrorf("--reason is required: say why the action is needed")
			}
			if opts.TicketID < 0 {
				return cmdutil.FlagErrorf("--ticket must be a positive ticket id")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return proposeRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringArrayVar(&params, "param", nil, "a param as name=value (repeatable)")
	cmd.Flags().Int64Var(&opts.TicketID, "ticket", 0, "the ticket the action is for (default: a new manual ticket)")
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why the action is needed (required)")
	return cmd
}

// ParseParams turns name=value pairs into a JSON object: a value that is
// valid JSON (number, true/false, array, object, quoted string) is kept
// as such, anything else is a string. A name given twice is an error.
func ParseParams(in []string) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	for _, kv := range in {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, cmdutil.FlagErrorf("--param %q: want name=value", kv)
		}
		if _, dup := m[k]; dup {
			return nil, cmdutil.FlagErrorf("--param %s given twice", k)
		}
		v = strings.TrimSpace(v)
		if json.Valid([]byte(v)) && v != "" && v != "null" {
			m[k] = json.RawMessage(v)
		} else {
			b, _ := json.Marshal(v)
			m[k] = b
		}
	}
	return json.Marshal(m)
}

func proposeRun(ctx context.Context, opts *ProposeOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	gate, err := opts.NewGate(cfg)
	if err != nil {
		return err
	}
	p, err := gate.Propose(ctx, api.ProposeRequest{ActionType: opts.ActionType, Params: opts.Params, TicketID: opts.TicketID, Reason: opts.Reason})
	if err != nil {
		return cmdutil.Clean("ticket", opts.TicketID, err)
	}
	if opts.Format == cmdutil.FormatJSON {
		return cmdutil.PrintJSON(opts.IO.Out, p)
	}
	fmt.Fprintf(opts.IO.Out, "Proposed action #%d %s %s for ticket #%d as %s; it expires %s.\n", p.ID, p.ActionType,
		cmdutil.CompactJSON(p.Params), p.TicketID, safetext.Line(p.ProposedBy, 0), p.ExpiresAt.UTC().Format("2006-01-02 15:04:05Z"))
	fmt.Fprintf(opts.IO.Out, "Someone else approves it: operator actions approve %s\n", strconv.FormatInt(p.ID, 10))
	return nil
}
