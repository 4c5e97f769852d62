// Package show implements `operator config show`.
package show

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
)

// ShowOptions are the parsed flags of `operator config show`.
type ShowOptions struct {
	IO     *iostreams.IOStreams
	Config func() (config.Config, error)
	// Source names the config file in use ("" for none).
	Source string
	Format string
}

// NewCmdShow returns the command; runF replaces showRun in tests.
func NewCmdShow(f *cmdutil.Factory, runF func(*ShowOptions) error) *cobra.Command {
	opts := &ShowOptions{IO: f.IOStreams, Config: f.Config}
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration (defaults < file < environment < flags), secrets masked",
		Long: `Print the effective configuration, in the config file's TOML format (or JSON
with -o json): the built-in defaults, overlaid with the file (--config or
$OPERATOR_CONFIG), then the environment (OPERATOR_PD, OPERATOR_DB, ...), then
the flags. API keys and URL passwords are shown as ****.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Format = f.Format()
			opts.Source = f.Flags.ConfigFile
			if opts.Source == "" {
				opts.Source = f.Getenv("OPERATOR_CONFIG")
			}
			if runF != nil {
				return runF(opts)
			}
			return showRun(opts)
		},
	}
	return cmd
}

func showRun(opts *ShowOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	m := cfg.Masked()
	if opts.Format == cmdutil.FormatJSON {
		return cmdutil.PrintJSON(opts.IO.Out, m)
	}
	b, err := m.TOML()
	if err != nil {
		return err
	}
	src := "no config file"
	if opts.Source != "" {
		src = "config file " + opts.Source
	}
	fmt.Fprintf(opts.IO.Out, "# Effective configuration: defaults < %s < environment < flags. Secrets masked.\n\n", src)
	_, err = opts.IO.Out.Write(b)
	return err
}
