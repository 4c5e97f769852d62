// Package types implements `operator actions types`: the action catalog
// with each action's params, risk, capacity flag and rollback.
package types

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
)

// TypesOptions are the parsed arguments of `operator actions types`.
type TypesOptions struct {
	IO *iostreams.IOStreams
	// Specs returns the catalog's entries, sorted by name.
	Specs  func() ([]action.Spec, error)
	Format string
	// Name, when set, shows that one action in full.
	Name string
}

// NewCmdTypes returns the command; runF replaces typesRun in tests.
func NewCmdTypes(f *cmdutil.Factory, runF func(*TypesOptions) error) *cobra.Command {
	opts := &TypesOptions{IO: f.IOStreams}
	opts.Specs = func() ([]action.Spec, error) {
		cfg, err := f.Config()
		if err != nil {
			return nil, err
		}
		if f.Catalog == nil {
			return nil, fmt.Errorf("no action catalog")
		}
		c, err := f.Catalog(cfg)
		if err != nil {
			return nil, err
		}
		return c.Specs(), nil
	}
	cmd := &cobra.Command{
		Use:   "types [TYPE]",
		Short: "List the action types a proposal can use: params, risk, capacity, rollback",
		Example: `  operator actions types
  operator actions types resume_scheduler
  operator actions types -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Format = f.Format()
			if len(args) == 1 {
				opts.Name = strings.TrimSpace(args[0])
			}
			if runF != nil {
				return runF(opts)
			}
			return typesRun(opts)
		},
	}
	return cmd
}

func typesRun(opts *TypesOptions) error {
	specs, err := opts.Specs()
	if err != nil {
		return err
	}
	if opts.Name != "" {
		var found []action.Spec
		for _, s := range specs {
			if s.Name == opts.Name {
				found = append(found, s)
			}
		}
		if len(found) == 0 {
			names := make([]string, 0, len(specs))
			for _, s := range specs {
				names = append(names, s.Name)
			}
			return cmdutil.FlagErrorf("unknown action type %q (known: %s)", cmdutil.Cell(cmdutil.Truncate(opts.Name, 60)), strings.Join(names, ", "))
		}
		specs = found
	}
	if opts.Format == cmdutil.FormatJSON {
		if opts.Name != "" {
			return cmdutil.PrintJSON(opts.IO.Out, specs[0])
		}
		return cmdutil.PrintJSON(opts.IO.Out, specs)
	}
	if opts.Name != "" {
		return printOne(opts.IO.Out, specs[0])
	}
	t := cmdutil.NewTable(opts.IO.Out, "TYPE", "RISK", "CAPACITY", "REVERSIBLE", "PARAMS")
	for _, s := range specs {
		params := make([]string, 0, len(s.Params))
		for _, p := range s.Params {
			params = append(params, ParamText(p))
		}
		if len(params) == 0 {
			params = append(params, "-")
		}
		t.Row(s.Name, string(s.Risk), yesNo(s.Capacity), yesNo(s.Reversible), strings.Join(params, ", "))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "\n`%s actions types TYPE` shows one type's description and rollback; * marks a required param.\n", cmdutil.Bin())
	return nil
}

func printOne(w io.Writer, s action.Spec) error {
	fmt.Fprintf(w, "%s (risk %s, capacity-reducing %s, reversible %s)\n\n%s\n\nParams:\n", s.Name, s.Risk, yesNo(s.Capacity), yesNo(s.Reversible), s.Description)
	if len(s.Params) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	for _, p := range s.Params {
		fmt.Fprintf(w, "  %s  %s\n", ParamText(p), p.Description)
	}
	_, err := fmt.Fprintf(w, "\nRollback: %s\n", s.Rollback)
	return err
}

// ParamText renders a param compactly: name*:type, with its enum or
// bounds, e.g. "name*:string", "limit*:integer[1..100000]",
// "policy:string{approximate|scan|usekey}".
func ParamText(p action.Param) string {
	var b strings.Builder
	b.WriteString(p.Name)
	if p.Required {
		b.WriteString("*")
	}
	b.WriteString(":" + string(p.Type))
	if len(p.Enum) > 0 {
		b.WriteString("{" + strings.Join(p.Enum, "|") + "}")
	}
	if p.Min != nil || p.Max != nil {
		lo, hi := "", ""
		if p.Min != nil {
			lo = strconv.FormatFloat(*p.Min, 'g', -1, 64)
		}
		if p.Max != nil {
			hi = strconv.FormatFloat(*p.Max, 'g', -1, 64)
		}
		b.WriteString("[" + lo + ".." + hi + "]")
	}
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
