package invariant

// Escalations lists invariant families whose members are stages of one
// incident on one subject, least severe first: when a later stage
// violates on a subject, the earlier stage's open ticket stays open (it is
// not resolved because the problem got worse), its severity is raised and
// the later stage's ticket is linked to it as its root.
var Escalations = [][]string{
	{NameStoreDisconnected, NameStoreUnhealthy, NameStoreDown},
}

// StoreRootInvariants are the store invariants whose tickets are roots of
// the region tickets a failing store causes, in order of preference.
var StoreRootInvariants = []string{
	NameStoreDisconnected, NameStoreUnhealthy, NameStoreDown, NameStoreOfflineBlocked, NameStoreOfflineStuck,
}

// SymptomInvariants are the cluster-wide region invariants whose tickets
// are linked to the ticket of the failing store they point at (evidence
// top_store_id or unrepaired_peers_by_store), or to the only failing
// store's ticket when the evidence names no store.
var SymptomInvariants = []string{
	NameRegionDownPeer, NameRegionPendingPeer, NameRegionMissPeer, NameRegionDownPeerUnrepaired,
	NameRegionPendingPeerStuck, NameRegionNoLeader, NameRegionOfflinePeer, NameUpStoresBelowReplicas,
	// A store that fails hands its leaders and, later, its replicas to the
	// survivors, unevenly: the imbalance is the store's incident.
	NameLeaderImbalance, NameRegionImbalance,
}
