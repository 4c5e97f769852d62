// Package version implements `operator version`.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/cmdutil"
)

// Commit overrides the VCS revision Go stamps (debug.ReadBuildInfo's
// vcs.revision), for builds without VCS stamping (-buildvcs=false, a
// source tarball): -ldflags "-X github.com/tikvops/operator/internal/cli/version.Commit=abc123".
var Commit = ""

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
			info := Resolve(f.Version)
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

// Resolve returns the version information of this binary: version as
// stamped with -ldflags (cli.Version), else the module version Go stamped
// (`go install ...@v1.2.0`), else "dev"; the commit from Commit, else
// debug.ReadBuildInfo's vcs.revision and vcs.modified.
func Resolve(version string) Info {
	info := Info{Version: version, Go: runtime.Version(), Commit: Commit}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if (info.Version == "" || info.Version == "dev") && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit != "" {
		if c, ok := strings.CutSuffix(info.Commit, "+dirty"); ok {
			info.Commit, info.Modified = c, true
		}
		return info
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}
