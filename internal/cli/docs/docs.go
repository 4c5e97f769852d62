// Package docs implements the hidden `operator docs man DIR`: man pages
// generated from the command tree (cobra/doc), so they always match
// `operator --help`. scripts/gen-docs.sh calls it.
package docs

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/tikvops/operator/internal/cli/cmdutil"
)

// NewCmdDocs returns `operator docs` with its `man` subcommand.
func NewCmdDocs(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "docs",
		Short:  "Generate documentation from the command tree",
		Hidden: true,
		Args:   cmdutil.NoArgs,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "man DIR",
		Short: "Write one man page per command (operator.1, operator-tickets-list.1, ...) into DIR",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.FlagErrorf("%s needs the output directory, e.g. %s man/", cmd.CommandPath(), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("docs man: %w", err)
			}
			root := cmd.Root()
			root.InitDefaultCompletionCmd()
			root.DisableAutoGenTag = true
			hdr := &doc.GenManHeader{Title: "OPERATOR", Section: "1", Source: "operator " + f.Version, Manual: "operator manual"}
			if err := doc.GenManTree(root, hdr, dir); err != nil {
				return fmt.Errorf("docs man: %w", err)
			}
			fmt.Fprintf(f.IOStreams.ErrOut, "man pages written to %s\n", dir)
			return nil
		},
	})
	return cmd
}
