package tikv

import (
	"os"
	"strings"
	"testing"
)

// TestActionsDoc keeps docs/actions.md in step with the catalog: every
// action type and each of its params is documented.
func TestActionsDoc(t *testing.T) {
	b, err := os.ReadFile("../../docs/actions.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, s := range NewCatalog(newClient(t, "127.0.0.1:1")).Specs() {
		row := ""
		for _, line := range strings.Split(doc, "\n") {
			if strings.HasPrefix(line, "| `"+s.Name+"` |") {
				row = line
			}
		}
		if row == "" {
			t.Errorf("docs/actions.md has no table row for %s", s.Name)
			continue
		}
		for _, p := range s.Params {
			if !strings.Contains(row, "`"+p.Name) {
				t.Errorf("docs/actions.md row of %s lacks param %s", s.Name, p.Name)
			}
		}
		if !strings.Contains(row, string(s.Risk)) {
			t.Errorf("docs/actions.md row of %s lacks risk %s", s.Name, s.Risk)
		}
	}
}
