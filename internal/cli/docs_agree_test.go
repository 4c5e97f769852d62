package cli_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli"
	"github.com/tikvops/operator/internal/cli/clitest"
)

// TestREADMECommandsMatchTheTree: README.md's CLI table and the command
// tree (what `operator --help` prints) list the same commands.
func TestREADMECommandsMatchTheTree(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	f, _, _ := clitest.Factory(t, "unused.db")
	root := cli.NewRootCmd(f)
	root.InitDefaultCompletionCmd()
	documented := map[string]bool{}
	cmdRE := regexp.MustCompile("`operator ([^`]+)`")
	var cells []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| `operator ") {
			// The first cell: up to the first " | " not escaped.
			cells = append(cells, strings.SplitN(strings.ReplaceAll(line[2:], `\|`, "¦"), " | ", 2)[0])
		}
	}
	for _, m := range cmdRE.FindAllStringSubmatch(strings.Join(cells, "\n"), -1) {
		var words []string
		for _, w := range strings.Fields(m[1]) {
			if strings.ContainsAny(w, "[-|\\¦") || strings.ToUpper(w) == w {
				break
			}
			words = append(words, w)
		}
		cmd, rest, err := root.Find(words)
		if err != nil || len(rest) > 0 || cmd == root {
			t.Errorf("README.md documents `operator %s`, which is not a command", strings.Join(words, " "))
			continue
		}
		documented[cmd.CommandPath()] = true
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" {
				continue
			}
			if sub.HasAvailableSubCommands() && !documented[sub.CommandPath()] {
				walk(sub)
				continue
			}
			if !documented[sub.CommandPath()] && !documented[c.CommandPath()] {
				t.Errorf("`%s` (%s) is missing from README.md's CLI table", sub.CommandPath(), sub.Short)
			}
		}
	}
	walk(root)
}
