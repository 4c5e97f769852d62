package invariant

import (
	"slices"
	"sort"
)

// Action types the runbooks name that the TiKV catalog may not offer yet
// (issue 15): a runbook proposes them only when Context.Actions lists
// them (hasAction), and degrades otherwise.
const (
	actionResumeScheduler  = "resume_scheduler"
	actionAddScheduler     = "add_scheduler"
	actionRemoveTombstones = "remove_tombstones"
)

// family is one invariant family: the runbook that diagnoses its tickets
// and the only action types a diagnosis of them may propose, from the
// rules or from a model (diagnose.Validate refuses anything else). An
// empty list means page only: a human must act.
type family struct {
	runbook runbook
	actions []string
}

// families is the one table that ties an invariant to its runbook and
// its allowed actions, merged from the family files' tables.
var families = mergeFamilies(balanceFamilies, hotFamilies, cpuFamilies, regionFamilies, offlineFamilies,
	storeStateFamilies, slowFamilies, spaceFamilies, pdHealthFamilies, pdWorkFamilies, isolationFamilies)

// mergeFamilies merges the family files' tables; an invariant listed twice
// is a programming error and panics at init.
func mergeFamilies(parts ...map[string]family) map[string]family {
	out := map[string]family{}
	for _, p := range parts {
		for name, fam := range p {
			if _, dup := out[name]; dup {
				panic("invariant: two families for " + name)
			}
			out[name] = fam
		}
	}
	return out
}

// Allowed returns the action types a diagnosis of a ticket of invariant
// may propose, sorted, and whether the invariant has a family at all. An
// invariant without a family may propose nothing (fail closed). It is the
// diagnose.AllowList the runner validates every proposal against.
func Allowed(invariant string) ([]string, bool) {
	fam, ok := families[invariant]
	if !ok {
		return nil, false
	}
	out := slices.Clone(fam.actions)
	sort.Strings(out)
	return out, true
}

// Families returns every invariant with a family, sorted.
func Families() []string {
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// hasAction reports whether the catalog the context lists offers action
// type name.
func (f *facts) hasAction(name string) bool {
	for _, s := range f.c.Actions {
		if s.Name == name {
			return true
		}
	}
	return false
}
