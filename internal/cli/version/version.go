// Package version implements `operator version`.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/cmdutil"
)

// Info is what `operator version -o json` prints.
type Info struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	// Commit is the VCS revision the binary was built from, when known.
	Commit string `json:"commit,omitempty"`
	// Modified is true when the working tree had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
}

// NewCmdVersion returns `operator version`.
func NewCmdVersion(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the operator version",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := Info{Version: f.Version, Go: runtime.Version()}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					switch s.Key {
					case "vcs.revision":
						info.Commit = s.Value
					case "vcs.modified":
						info.Modified = s.Value == "true"
					}
				}
			}
			if f.Format() == cmdutil.FormatJSON {
				return cmdutil.PrintJSON(f.IOStreams.Out, info)
			}
			line := fmt.Sprintf("operator %s (%s", info.Version, info.Go)
			if info.Commit != "" {
				c := info.Commit
				if len(c) > 12 {
					c = c[:12]
				}
				line += ", commit " + c
				if info.Modified {
					line += "+dirty"
				}
			}
			fmt.Fprintln(f.IOStreams.Out, line+")")
			return nil
		},
	}
}
