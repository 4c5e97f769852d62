// Package authcmd implements `operator auth token` and `operator auth
// whoami`.
package authcmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/cli/cmdutil"
)

// NewCmdAuth returns `operator auth`.
func NewCmdAuth(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "API identities: make a token, ask who you are",
	}
	cmd.AddCommand(newCmdToken(f), newCmdWhoAmI(f))
	return cmd
}

func newCmdToken(f *cmdutil.Factory) *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "token NAME --role viewer|approver|admin",
		Short: "Make a new bearer token for the API and print its config entry",
		Long: `Make a random bearer token for NAME. The secret is printed once; the daemon
stores only its SHA-256 in the configuration. Add the printed [[auth.tokens]]
entry to the daemon's TOML file and restart it; give the secret to NAME, who
passes it as --token (or $OPERATOR_TOKEN) with --server.`,
		Example: `  operator auth token alice --role approver`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := auth.ValidName(args[0]); err != nil {
				return cmdutil.FlagErrorf("%v", err)
			}
			r, err := auth.ParseRole(role)
			if err != nil {
				return cmdutil.FlagErrorf("--role: %v", err)
			}
			secret, err := auth.NewTokenSecret()
			if err != nil {
				return err
			}
			if f.Format() == cmdutil.FormatJSON {
				return cmdutil.PrintJSON(f.IOStreams.Out, map[string]string{"name": args[0], "role": string(r), "token": secret, "sha256": auth.HashToken(secret)})
			}
			out := f.IOStreams.Out
			fmt.Fprintf(out, "# Add to the daemon's configuration (only the hash is stored):\n[[auth.tokens]]\nname = %q\nrole = %q\nsha256 = %q\n\n", args[0], string(r), auth.HashToken(secret))
			fmt.Fprintf(out, "# Secret for %s (shown once):\n%s\n", args[0], secret)
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "approver", "viewer, approver or admin")
	return cmd
}

func newCmdWhoAmI(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Ask the daemon who you are and which cluster it acts on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.Config()
			if err != nil {
				return err
			}
			c, err := f.Daemon(cfg)
			if err != nil {
				return err
			}
			w, err := c.WhoAmI(cmd.Context())
			if err != nil {
				return err
			}
			if f.Format() == cmdutil.FormatJSON {
				return cmdutil.PrintJSON(f.IOStreams.Out, w)
			}
			fmt.Fprintf(f.IOStreams.Out, "%s, role %s (via %s), on PD cluster %s (daemon %s, %s)\n", w.Identity.Name, w.Identity.Role, w.Identity.Via, w.ClusterID, w.Version, c.Where())
			return nil
		},
	}
}
