package invariant

import "testing"

// TestFamilies: every invariant has exactly one family, from its family
// file's table; a second one for the same invariant panics at init.
func TestFamilies(t *testing.T) {
	for _, n := range Names() {
		if _, ok := families[n]; !ok {
			t.Errorf("%s has no family", n)
		}
	}
	if len(families) != len(Names()) {
		t.Errorf("%d families for %d invariants", len(families), len(Names()))
	}
	defer func() {
		if recover() == nil {
			t.Error("a duplicate family did not panic")
		}
	}()
	mergeFamilies(hotFamilies, map[string]family{NameHotWriteStore: {}})
}
