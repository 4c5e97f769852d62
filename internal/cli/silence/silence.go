// Package silence implements `operator silence add|list|expire`: silences
// that mute notifications and proposals for a store, an invariant or the
// whole cluster for a while, made through the daemon's API (your
// authenticated identity is recorded, signed, and told to the team).
package silence

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/safetext"
	"github.com/tikvops/operator/internal/store"
)

// NewCmdSilence returns `operator silence` with add, list and expire.
func NewCmdSilence(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "silence <command>",
		Short: "Silences: mute notifications and proposals for a store, an invariant or the cluster",
		Long: `A silence mutes, for a while, the notifications about the tickets in its scope
(a store, an invariant, both, or the whole cluster) and the proposals of their
diagnoses. Tickets are still opened and diagnosed; the diagnosis says it was
silenced. Creating and expiring one goes through the daemon (approver role),
is recorded with your identity, signed with the audit key and told to the
team. Configured [[maintenance]] windows are listed too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCmdAdd(f), newCmdList(f), newCmdExpire(f))
	return cmd
}

func client(f *cmdutil.Factory) (*api.Client, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	return f.Daemon(cfg)
}

func newCmdAdd(f *cmdutil.Factory) *cobra.Command {
	var (
		req        api.SilenceRequest
		dur, start string
		end        string
	)
	cmd := &cobra.Command{
		Use:   "add [--store ID] [--invariant NAME] (--for DURATION | --end TIME) --reason TEXT",
		Short: "Silence a store, an invariant or the cluster for a while",
		Long: `Silence the tickets of a store (--store 4), of an invariant (--invariant
store_low_space), of both, or of the whole cluster (neither), from now (or
--start, RFC 3339) for --for (a Go duration: 2h, 90m) or until --end. At most
31 days. --reason is required; it is shown in every muted diagnosis.`,
		Example: `  operator silence add --store 4 --for 2h --reason "replacing the disk of store 4"
  operator silence add --invariant leader_imbalance --for 30m --reason "rolling restart"`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req.Reason = strings.TrimSpace(req.Reason)
			if req.Reason == "" {
				return cmdutil.FlagErrorf("--reason is required: say why notifications are muted")
			}
			if (dur == "") == (end == "") {
				return cmdutil.FlagErrorf("give --for DURATION or --end TIME (one of them): a silence ends")
			}
			if dur != "" {
				d, err := time.ParseDuration(dur)
				if err != nil || d <= 0 {
					return cmdutil.FlagErrorf("--for %q: want a positive duration such as 2h or 90m", dur)
				}
				req.For = d.String()
			}
			for _, p := range []struct {
				flag, v string
				dst     **time.Time
			}{{"--start", start, &req.StartsAt}, {"--end", end, &req.EndsAt}} {
				if p.v == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339, p.v)
				if err != nil {
					return cmdutil.FlagErrorf("%s %q: want an RFC 3339 time such as 2026-12-03T22:00:00Z", p.flag, p.v)
				}
				*p.dst = &t
			}
			c, err := client(f)
			if err != nil {
				return err
			}
			sl, err := c.CreateSilence(cmd.Context(), req)
			if err != nil {
				return cmdutil.Clean("silence", 0, err)
			}
			if f.Format() == cmdutil.FormatJSON {
				return cmdutil.PrintJSON(f.IOStreams.Out, sl)
			}
			fmt.Fprintf(f.IOStreams.Out, "Silence #%d: %s muted from %s until %s by %s (%s): %s\n", sl.ID, sl.Scope(),
				sl.StartsAt.Local().Format(time.RFC3339), sl.EndsAt.Local().Format(time.RFC3339), sl.CreatedBy, sl.CreatedRole,
				safetext.Line(sl.Reason, safetext.MaxText))
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Store, "store", "", "store id to silence (default: every store)")
	cmd.Flags().StringVar(&req.Invariant, "invariant", "", "invariant to silence, or alert:NAME (default: every invariant)")
	cmd.Flags().StringVar(&dur, "for", "", "how long, from the start (2h, 90m)")
	cmd.Flags().StringVar(&start, "start", "", "when it starts, RFC 3339 (default now)")
	cmd.Flags().StringVar(&end, "end", "", "when it ends, RFC 3339 (instead of --for)")
	cmd.Flags().StringVar(&req.Reason, "reason", "", "why (required)")
	return cmd
}

func newCmdList(f *cmdutil.Factory) *cobra.Command {
	var active bool
	cmd := &cobra.Command{
		Use:   "list [--active]",
		Short: "List silences and configured maintenance windows",
		Long: `List silences (newest first) and the configured maintenance windows, with their
scope, window, who made them and why; --active keeps those muting now. Read
through the daemon, which also knows the configured windows.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client(f)
			if err != nil {
				return err
			}
			ss, err := c.Silences(cmd.Context(), active)
			if err != nil {
				return cmdutil.Clean("silence", 0, err)
			}
			out := f.IOStreams.Out
			if f.Format() == cmdutil.FormatJSON {
				if ss == nil {
					ss = []store.Silence{}
				}
				return cmdutil.PrintJSON(out, ss)
			}
			if len(ss) == 0 {
				fmt.Fprintln(out, "No silences.")
				return nil
			}
			now := f.Now()
			t := cmdutil.NewTableIO(f.IOStreams, false, "ID", "SCOPE", "STATE", "STARTS", "ENDS", "BY", "REASON")
			for _, s := range ss {
				id := fmt.Sprintf("#%d", s.ID)
				if s.ID == 0 {
					id = fmt.Sprintf("window %d", s.Window)
				}
				state := "active"
				switch {
				case s.Expired != nil:
					state = "expired by " + s.Expired.By
				case !now.Before(s.End()):
					state = "over"
				case now.Before(s.StartsAt):
					state = "pending"
				}
				t.Row(id, s.Scope(), state, cmdutil.Stamp(s.StartsAt, now), cmdutil.Stamp(s.End(), now), s.CreatedBy, s.Reason)
			}
			return t.Flush()
		},
	}
	cmd.Flags().BoolVar(&active, "active", false, "only the silences and windows muting now")
	return cmd
}

func newCmdExpire(f *cmdutil.Factory) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     "expire ID --reason TEXT",
		Short:   "End a silence now, with a reason",
		Long:    `End a silence now. Recorded with your identity and reason, signed, and told to the team. Held notifications of tickets still open are then sent; those of tickets that resolved during the silence are not. Configured maintenance windows end by editing the configuration.`,
		Example: `  operator silence expire 3 --reason "disk replaced, store 4 back"`,
		Args:    cmdutil.ExactID("silence"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := cmdutil.ParseID("silence", args[0])
			if err != nil {
				return err
			}
			if reason = strings.TrimSpace(reason); reason == "" {
				return cmdutil.FlagErrorf("--reason is required: say why the silence ends early")
			}
			c, err := client(f)
			if err != nil {
				return err
			}
			sl, err := c.ExpireSilence(cmd.Context(), id, api.ExpireRequest{Reason: reason})
			if err != nil {
				return cmdutil.Clean("silence", id, err)
			}
			if f.Format() == cmdutil.FormatJSON {
				return cmdutil.PrintJSON(f.IOStreams.Out, sl)
			}
			fmt.Fprintf(f.IOStreams.Out, "Expired silence #%d (%s) as %s: %s\n", sl.ID, sl.Scope(), sl.Expired.By,
				safetext.Line(sl.Expired.Reason, safetext.MaxText))
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the silence ends early (required)")
	return cmd
}
