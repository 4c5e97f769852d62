package cmdutil

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/store"
)

// NoArgs refuses positional arguments with a *FlagError.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return FlagErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

// ExactID requires exactly one positional argument, the id of a kind
// ("ticket", "action"), with a *FlagError otherwise.
func ExactID(kind string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch len(args) {
		case 1:
			return nil
		case 0:
			return FlagErrorf("%s needs %s %s id, e.g. %s 7", cmd.CommandPath(), article(kind), kind, cmd.CommandPath())
		default:
			return FlagErrorf("%s takes one %s id, got %d arguments", cmd.CommandPath(), kind, len(args))
		}
	}
}

// Store opens the database the effective configuration names. It never
// creates the file (store.ErrNoDatabase when it is missing, exit 5).
func (f *Factory) Store(ctx context.Context) (*store.Store, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	return f.OpenStore(ctx, cfg)
}

// Format returns the -o output format.
func (f *Factory) Format() string {
	if f.Flags.Output == "" {
		return FormatTable
	}
	return f.Flags.Output
}

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}
