package rules

import (
	"slices"
	"sort"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/tikv"
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

// families is the one place that ties an invariant to its runbook and its
// allowed actions.
var families = map[string]family{
	invariant.NameLeaderImbalance: {leaderImbalance, []string{tikv.ActionTransferLeader, actionResumeScheduler, actionAddScheduler}},
	invariant.NameRegionImbalance: {regionImbalance, []string{tikv.ActionTransferPeer, actionResumeScheduler, actionAddScheduler}},
	invariant.NameStoreNoLeaders:  {storeNoLeaders, []string{tikv.ActionRemoveEvictLeader, actionResumeScheduler, actionAddScheduler}},
	invariant.NameHotWriteStore:   {hotWriteStore, []string{tikv.ActionSplitRegion}},
	invariant.NameRegionOversized: {regionOversized, []string{tikv.ActionSplitRegion}},
	// A drain that cannot finish: cancel it (only for a store that still
	// heartbeats), or speed it up by moving its leaders first.
	invariant.NameStoreOfflineStuck:     {storeOfflineStuck, []string{tikv.ActionCancelDrain, tikv.ActionEvictLeader}},
	invariant.NameUpStoresBelowReplicas: {upStoresBelowReplicas, []string{tikv.ActionCancelDrain}},
	invariant.NameRegionOfflinePeer:     {regionOfflinePeer, []string{tikv.ActionCancelDrain}},
	invariant.NameTombstonePileup:       {tombstonePileup, []string{actionRemoveTombstones}},
	// A store that stopped heartbeating: PD acts after
	// max-store-down-time; a human finds out why.
	invariant.NameStoreDisconnected: {storeGone, nil},
	invariant.NameStoreUnhealthy:    {storeGone, nil},
	invariant.NameStoreDown:         {storeGone, nil},
	invariant.NameStoreSlow:         {storeSlow, []string{tikv.ActionEvictLeader}},
	// Space: never raise low-space-ratio (it hides a filling disk).
	invariant.NameStoreLowSpace:        {storeLowSpace, nil},
	invariant.NameClusterSpaceUsed:     {clusterSpaceUsed, nil},
	invariant.NameStoreCapacitySuspect: {storeCapacitySuspect, nil},
	// Down peers PD does not repair (their store heartbeats): move or
	// remove the down peer with the quorum stated.
	invariant.NameRegionDownPeer: {regionDownPeer, []string{tikv.ActionTransferPeer, tikv.ActionRemovePeer}},
	// A pending peer that never catches up on a huge region: split it.
	invariant.NameRegionPendingPeer: {regionPendingPeer, []string{tikv.ActionSplitRegion}},
	invariant.NameRegionMissPeer:    {regionMissPeer, []string{tikv.ActionSetReplicaScheduleLimit}},
	// Orphan learners (tikv/pd#6573), never the replacement copy.
	invariant.NameRegionExtraPeer: {regionExtraPeer, []string{tikv.ActionRemovePeer}},
	invariant.NamePDUnhealthy:     {pdUnhealthy, nil},
	invariant.NamePDNoLeader:      {pdNoLeader, nil},
	invariant.NamePDUnreachable:   {pdUnreachable, nil},
	// Judgement over time (issue 11): PD's own work and incidents.
	invariant.NameRegionNoLeader:           {regionNoLeader, nil},
	invariant.NameRegionDownPeerUnrepaired: {regionDownPeerUnrepaired, []string{tikv.ActionTransferPeer, tikv.ActionRemovePeer}},
	invariant.NameOperatorTimeouts:         {operatorTimeouts, []string{tikv.ActionRemovePeer}},
	invariant.NameRegionPendingPeerStuck:   {regionPendingPeerStuck, []string{tikv.ActionSplitRegion}},
	invariant.NameStoreOfflineBlocked:      {storeOfflineStuck, []string{tikv.ActionCancelDrain, tikv.ActionEvictLeader}},
	invariant.NameStoreDuplicateAddress:    {storeDuplicateAddress, nil},
	invariant.NameStoreLeaderDrop:          {storeLeaderDrop, nil},
	invariant.NameHostStoresFailing:        {hostStoresFailing, nil},
	// A topology decision: page (issue 11, isolation-level).
	invariant.NameReplicationIsolationRisk: {replicationIsolationRisk, nil},
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
