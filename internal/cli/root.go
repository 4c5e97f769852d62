// Package cli is the operator's command line: the root command with the
// global flags, one package per noun/verb below it (as GitHub CLI's
// pkg/cmd), and the mapping of errors to exit codes. Only Main prints
// errors and chooses the exit code.
package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/actions"
	"github.com/tikvops/operator/internal/cli/audit"
	"github.com/tikvops/operator/internal/cli/authcmd"
	"github.com/tikvops/operator/internal/cli/check"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/configcmd"
	"github.com/tikvops/operator/internal/cli/docs"
	"github.com/tikvops/operator/internal/cli/notifications"
	"github.com/tikvops/operator/internal/cli/record"
	"github.com/tikvops/operator/internal/cli/replay"
	"github.com/tikvops/operator/internal/cli/run"
	"github.com/tikvops/operator/internal/cli/silence"
	"github.com/tikvops/operator/internal/cli/tickets"
	"github.com/tikvops/operator/internal/cli/version"
	"github.com/tikvops/operator/internal/pd"
)

// Version is set at build time with
// -ldflags "-X github.com/tikvops/operator/internal/cli.Version=v1.2.0"
// (scripts/release.sh, scripts/demo.sh); otherwise `operator version` uses
// the module version Go stamped, else "dev".
var Version = "dev"

// Main runs the command line with the process's arguments and streams and
// returns the exit code.
func Main() int {
	f := cmdutil.New(Version)
	return Execute(context.Background(), f, NewRootCmd(f), nil)
}

// Execute runs root with args (nil: the process's arguments), prints an
// error to f's error stream unless the command already reported it, and
// returns the exit code (ExitCode).
func Execute(ctx context.Context, f *cmdutil.Factory, root *cobra.Command, args []string) int {
	if args != nil {
		root.SetArgs(args)
	}
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitCode(err)
	printError(f.IOStreams.ErrOut, cmd, err, code)
	return code
}

func printError(w io.Writer, cmd *cobra.Command, err error, code int) {
	var silent *cmdutil.SilentError
	if errors.As(err, &silent) {
		return
	}
	fmt.Fprintf(w, "Error: %s\n", err)
	switch code {
	case ExitUsage:
		if cmd != nil {
			fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	case ExitNoDatabase:
		fmt.Fprintf(w, "Hint: `%s run` creates the database; point --db, $OPERATOR_DB or [database] path at it.\n", cmdutil.Bin())
	case ExitPDUnreachable:
		fmt.Fprintln(w, "Hint: "+pdHint(err))
	case ExitNotPD:
		fmt.Fprintln(w, "Hint: --pd must be PD's client URL (pd-ctl -u, port 2379 by default), not TiDB's, TiKV's, Grafana's or Prometheus' port.")
	}
}

// pdHint explains why PD did not answer, from the error's cause: TLS
// trust in either direction, plain HTTP to a TLS PD, no PD leader, or
// nothing listening.
func pdHint(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		apiErr    *pd.APIError
	)
	msg := err.Error()
	switch {
	case errors.As(err, &unknownCA):
		return "PD's certificate is not signed by the CA in --cacert ([pd] cacert-path): give the cluster's CA (the ca.crt of `tiup cluster`)."
	case errors.As(err, &hostErr):
		return "PD's certificate does not name the host in --pd: use the host name or address the certificate was issued for."
	case strings.Contains(msg, "remote error: tls: unknown certificate authority"),
		strings.Contains(msg, "remote error: tls: bad certificate"),
		strings.Contains(msg, "remote error: tls: certificate required"):
		return "PD rejected the client certificate: it requires one signed by a CA it trusts; give --cert and --key issued by the cluster's CA " +
			"(the client.crt and client.pem of `tiup cluster`). A certificate from another CA is not even sent."
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "PD speaks plain HTTP at that address: use an http:// endpoint without TLS files."
	case errors.As(err, &apiErr) && apiErr.Status == 400 && strings.Contains(apiErr.Message, "HTTPS server"):
		return "PD uses TLS: use https:// endpoints with --cacert, --cert and --key (the same files as pd-ctl)."
	case errors.As(err, &apiErr) && apiErr.Status == 503:
		return "PD answered 503: it has no leader (a PD quorum is down or an election is under way); check the PD members' logs."
	}
	return "check --pd, $OPERATOR_PD or [pd] endpoints, and the TLS files if PD uses TLS."
}

// NewRootCmd builds the command tree over f. The global flags are bound to
// f.Flags.
func NewRootCmd(f *cmdutil.Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "operator <command>",
		Short: "Keep a TiKV cluster healthy: detect, diagnose, propose, and act only with approval",
		Long: `operator watches a TiKV cluster through PD's HTTP API, opens one ticket per
violated invariant, diagnoses it (built-in runbooks, or Claude / an
OpenAI-compatible model), proposes a typed action, and executes it through
PD only after a human approves it, writing a hash-chained audit trail.

Terms: an "action" is what operator proposes and executes; a "PD operator" is
PD's own scheduling task (pd-ctl operator show), which an action may create.

Configuration: defaults < TOML file (--config, $OPERATOR_CONFIG) <
environment ($OPERATOR_PD, $OPERATOR_DB, ...) < flags.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch f.Flags.Output {
			case cmdutil.FormatTable, cmdutil.FormatJSON:
				return nil
			}
			return cmdutil.FlagErrorf("invalid -o %q: want table or json", f.Flags.Output)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cmdutil.FlagErrorWrap(err) })
	root.SetOut(f.IOStreams.Out)
	root.SetErr(f.IOStreams.ErrOut)
	root.SetIn(f.IOStreams.In)

	pf := root.PersistentFlags()
	gf := f.Flags
	pf.StringVar(&gf.ConfigFile, "config", "", "TOML config file (default $OPERATOR_CONFIG)")
	pf.StringVarP(&gf.PD, "pd", "u", "", "PD URL(s), comma-separated, like pd-ctl -u (default [pd] endpoints or http://127.0.0.1:2379)")
	pf.StringVar(&gf.Overrides.DB, "db", "", "SQLite database file (default [database] path or operator.db)")
	pf.StringVar(&gf.Overrides.Prometheus, "prometheus", "", "Prometheus URL (optional)")
	pf.StringVar(&gf.Overrides.CACert, "cacert", "", "CA certificate to verify PD (PEM), for TLS")
	pf.StringVar(&gf.Overrides.Cert, "cert", "", "client certificate for PD (PEM), for mutual TLS")
	pf.StringVar(&gf.Overrides.Key, "key", "", "client key for PD (PEM), for mutual TLS")
	pf.StringVarP(&gf.Output, "output", "o", cmdutil.FormatTable, "output format: table or json")
	pf.StringVar(&gf.Overrides.Server, "server", "", "daemon API URL for decisions, with --token (default [server] url, else the daemon's Unix socket)")
	pf.StringVar(&gf.Overrides.Token, "token", "", "bearer token for --server (default $OPERATOR_TOKEN)")

	root.AddCommand(
		run.NewCmdRun(f, nil),
		check.NewCmdCheck(f, nil),
		tickets.NewCmdTickets(f),
		notifications.NewCmdNotifications(f),
		silence.NewCmdSilence(f),
		actions.NewCmdActions(f),
		audit.NewCmdAudit(f),
		configcmd.NewCmdConfig(f),
		authcmd.NewCmdAuth(f),
		replay.NewCmdReplay(f, nil),
		record.NewCmdRecord(f, nil),
		version.NewCmdVersion(f),
	)
	// `operator completion bash|zsh|fish|powershell` (cobra's).
	root.CompletionOptions.HiddenDefaultCmd = false
	root.AddCommand(docs.NewCmdDocs(f))
	return root
}
