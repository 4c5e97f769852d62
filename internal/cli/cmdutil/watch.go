package cmdutil

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/iostreams"
)

// DefaultWatchInterval is the refresh period of --watch.
const DefaultWatchInterval = 2 * time.Second

// WatchFlags are the --watch and --watch-interval flags of a list command.
type WatchFlags struct {
	Watch    bool
	Interval time.Duration
}

// AddWatchFlags registers -w/--watch and --watch-interval on cmd.
func AddWatchFlags(cmd *cobra.Command, w *WatchFlags) {
	cmd.Flags().BoolVarP(&w.Watch, "watch", "w", false, "refresh the list every --watch-interval until Ctrl-C")
	cmd.Flags().DurationVar(&w.Interval, "watch-interval", DefaultWatchInterval, "refresh period of --watch")
}

// Validate rejects a non-positive --watch-interval and --watch with -o json
// (a stream of JSON documents is not what scripts expect; poll instead).
func (w WatchFlags) Validate(format string) error {
	if !w.Watch {
		return nil
	}
	if w.Interval <= 0 {
		return FlagErrorf("--watch-interval must be positive, got %s", w.Interval)
	}
	if format == FormatJSON {
		return FlagErrorf("--watch prints tables; with -o json, run the command in a loop instead")
	}
	return nil
}

// clearScreen moves the cursor home and clears the terminal.
const clearScreen = "\x1b[H\x1b[2J"

// Watch calls render at once and then every interval until ctx ends, and
// returns nil then (Ctrl-C ends a watch normally). Before each render it
// clears the terminal when Out is one (ios.Terminal), else prints a header
// line with the time, like watch(1); title is the command line shown in
// that header. A render error ends the watch with that error. after is
// time.After (tests replace it).
func Watch(ctx context.Context, ios *iostreams.IOStreams, title string, interval time.Duration,
	now func() time.Time, after func(time.Duration) <-chan time.Time, render func(ctx context.Context) error) error {
	if after == nil {
		after = time.After
	}
	for {
		if ios.Terminal != nil {
			_, _ = io.WriteString(ios.Terminal, clearScreen)
		}
		fmt.Fprintf(ios.Out, "Every %s: %s    %s\n\n", interval, title, now().Format(time.TimeOnly))
		if err := render(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-after(interval):
		}
	}
}

// CommandLine renders cmd as the user ran it, for headers and hints:
// Bin() followed by the subcommand path ("bin/operator tickets list").
func CommandLine(cmd *cobra.Command) string {
	parts := strings.Fields(cmd.CommandPath())
	if len(parts) == 0 {
		return Bin()
	}
	return strings.Join(append([]string{Bin()}, parts[1:]...), " ")
}
