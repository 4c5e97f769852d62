package tikv

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
)

// regionState is the live state an operator-based action checks.
type regionState struct {
	region *pd.Region
	stores []pd.StoreInfo
	// now is PD's clock when the stores were read (zero if PD sent no
	// Date header).
	now time.Time
	// prevOp is the operator PD shows for the region before ours (nil if
	// none); a running one blocks ours.
	prevOp *pd.RegionOperator
}

// loadRegion reads the region, the stores (with PD's clock) and the
// region's operator, recording the "region exists" and "no running
// operator" checks. It returns nil state (and no error) when the region is
// unknown.
func loadRegion(ctx context.Context, c *pd.Client, p *plan, regionID uint64) (*regionState, error) {
	region, err := c.Region(ctx, regionID)
	if errors.Is(err, pd.ErrRegionNotFound) {
		p.check("region_exists", false, "region %d not found in PD", regionID)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p.check("region_exists", true, "region %d exists (epoch %d/%d, %d peers, leader on store %d)",
		regionID, region.Epoch.ConfVer, region.Epoch.Version, len(region.Peers), region.Leader.StoreID)
	stores, now, err := c.StoresWithTime(ctx)
	if err != nil {
		return nil, err
	}
	op, err := currentOperatorDesc(ctx, c, regionID)
	if err != nil {
		return nil, err
	}
	if op != nil && !op.Status.Finished() {
		p.check("no_running_operator", false, "region %d already has a running operator (%s); PD would refuse a new one", regionID, firstWord(op.Desc))
	} else {
		p.check("no_running_operator", true, "no operator running on region %d", regionID)
	}
	return &regionState{region: region, stores: stores, now: now, prevOp: op}, nil
}

func (rs *regionState) ignoreDesc() string {
	if rs.prevOp == nil {
		return ""
	}
	return rs.prevOp.Desc
}

// checkTargetStore records that store id exists, is Up in a known state,
// has sent a store heartbeat within MaxHeartbeatIntervals store-heartbeat
// intervals (a store stopped seconds ago still shows Up in PD for 20 s)
// and is a TiKV store (TiFlash stores only hold learners of columnar
// replicas).
func checkTargetStore(ctx context.Context, p *plan, stores []pd.StoreInfo, now time.Time, id uint64) bool {
	s := findStore(stores, id)
	if !p.check("target_store_exists", s != nil, "store %d %s", id, map[bool]string{true: "exists", false: "not found among PD's non-Tombstone stores"}[s != nil]) {
		return false
	}
	if !p.check("target_store_state_known", knownState(s.Store.StateName), "store %d state_name %q (from %s)", id, s.Store.StateName, endpointStores) {
		return false
	}
	ok := p.check("target_store_up", s.Store.StateName == pd.StateUp, "store %d is %s (must be Up)", id, s.Store.StateName)
	ok = checkHeartbeat(p, s, now, heartbeatInterval(ctx)) && ok
	if s.IsTiFlash() {
		p.check("target_store_tikv", false, "store %d is a TiFlash store (label engine=tiflash)", id)
		return false
	}
	return ok
}

// operatorStep is the single POST /pd/api/v1/operators step of an
// operator-based action.
func operatorStep(c *pd.Client, body map[string]any) step {
	return step{
		req:  action.Request{Method: "POST", Path: "/pd/api/v1/operators", Body: jsonBody(body)},
		send: func(ctx context.Context) error { return c.CreateOperator(ctx, body) },
	}
}

// typedAction returns the pdAction for spec whose plan decodes the raw
// params into a P (action.DecodeParams; a plan failing the "params" check
// when they do not decode) and then evaluates build on them.
func typedAction[P any](spec action.Spec, build func(ctx context.Context, c *pd.Client, prm P) (*plan, error)) *pdAction {
	return &pdAction{spec: spec, plan: func(ctx context.Context, c *pd.Client, raw json.RawMessage) (*plan, error) {
		var prm P
		if err := action.DecodeParams(spec, raw, &prm); err != nil {
			return invalidParams(err), nil
		}
		return build(ctx, c, prm)
	}}
}

type transferLeaderParams struct {
	RegionID  uint64 `json:"region_id"`
	ToStoreID uint64 `json:"to_store_id"`
}

func transferLeader() *pdAction {
	spec := action.Spec{
		Name:        ActionTransferLeader,
		Description: "Move a region's Raft leader to another store that already holds a voter of it (PD operator transfer-leader).",
		Params: []action.Param{
			idParam("region_id", "id of the region whose leader moves"),
			idParam("to_store_id", "store that becomes the leader; it must already hold a voter of the region"),
		},
		Risk:       action.RiskLow,
		Reversible: true,
		Rollback:   "transfer_leader back to the previous leader store (recorded in previous.leader_store_id); PD's balance-leader scheduler may also move it again",
		Targets:    []string{"region_id", "to_store_id"},
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm transferLeaderParams) (*plan, error) {
		p := &plan{}
		rs, err := loadRegion(ctx, c, p, prm.RegionID)
		if err != nil || rs == nil {
			return p, err
		}
		r := rs.region
		checkTargetStore(ctx, p, rs.stores, rs.now, prm.ToStoreID)
		peer, has := r.PeerOn(prm.ToStoreID)
		role := peerRoleName(peer)
		p.check("target_holds_voter", has && peer.IsVoter(), "store %d %s", prm.ToStoreID, peerRole(peer, has))
		if has && peer.IsVoter() {
			p.check("target_not_joint", role == roleVoter,
				"peer %d on store %d is %s (joint consensus: PD must leave it before a leader moves there)", peer.ID, prm.ToStoreID, role)
			p.check("target_not_witness", !peer.IsWitness, "peer %d on store %d is_witness=%v (a witness holds no data and cannot lead)", peer.ID, prm.ToStoreID, peer.IsWitness)
			p.check("target_peer_healthy", !peerListed(r.DownPeers, peer.ID) && !pendingListed(r.PendingPeers, peer.ID),
				"peer %d on store %d is %s", peer.ID, prm.ToStoreID, peerHealthText(r, peer.ID))
		}
		if err := checkLeaderHome(ctx, c, p, r, rs.stores, prm.ToStoreID); err != nil {
			return nil, err
		}
		p.check("target_not_leader", r.Leader.StoreID != prm.ToStoreID, "leader of region %d is on store %d", r.ID, r.Leader.StoreID)
		p.previous = map[string]any{"leader_store_id": r.Leader.StoreID}
		body := map[string]any{"name": "transfer-leader", "region_id": prm.RegionID, "to_store_id": prm.ToStoreID}
		p.steps = []step{operatorStep(c, body)}
		p.summary = fmt.Sprintf("transfer the leader of region %d from store %d to store %d", r.ID, r.Leader.StoreID, prm.ToStoreID)
		p.verify = operatorVerifier(c, Follow{
			RegionID: prm.RegionID, Desc: "admin-transfer-leader", Ignore: rs.ignoreDesc(),
			Effect: func(_ context.Context, r *pd.Region) (bool, string) {
				return r.Leader.StoreID == prm.ToStoreID, fmt.Sprintf("leader of region %d on store %d", r.ID, r.Leader.StoreID)
			},
		})
		return p, nil
	})
}

func peerRole(p pd.Peer, has bool) string {
	switch {
	case !has:
		return "holds no peer of the region"
	case p.IsVoter():
		return "holds a voter (peer " + fmt.Sprint(p.ID) + ")"
	default:
		return "holds only a learner (peer " + fmt.Sprint(p.ID) + ")"
	}
}

type splitParams struct {
	RegionID uint64   `json:"region_id"`
	Policy   string   `json:"policy"`
	Keys     []string `json:"keys"`
}

func splitRegion() *pdAction {
	spec := action.Spec{
		Name: ActionSplitRegion,
		Description: "Split a region in two (PD operator split-region). policy approximate (default) or scan lets TiKV pick the middle key " +
			"from its size estimate or an exact scan; usekey splits at the given hex keys.",
		Params: []action.Param{
			idParam("region_id", "id of the region to split"),
			{Name: "policy", Type: action.ParamString, Description: "approximate (default), scan or usekey", Enum: []string{"approximate", "scan", "usekey"}},
			{Name: "keys", Type: action.ParamStringList, Description: "split keys as hex (as PD renders start_key/end_key); only with policy usekey, each strictly inside the region"},
		},
		Risk:       action.RiskLow,
		Reversible: false,
		Rollback:   "none directly; PD's merge checker merges small adjacent regions back after split-merge-interval (default 1h)",
		Targets:    []string{"region_id"},
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm splitParams) (*plan, error) {
		if prm.Policy == "" {
			prm.Policy = "approximate"
		}
		p := &plan{}
		keys, keyErr := normalizeKeys(prm.Keys)
		switch {
		case keyErr != nil:
			p.check("keys", false, "%v", keyErr)
		case prm.Policy == "usekey" && len(keys) == 0:
			p.check("keys", false, "policy usekey needs at least one key")
		case prm.Policy != "usekey" && len(keys) > 0:
			p.check("keys", false, "keys are only used with policy usekey (policy is %s)", prm.Policy)
		}
		rs, err := loadRegion(ctx, c, p, prm.RegionID)
		if err != nil || rs == nil {
			return p, err
		}
		r := rs.region
		p.check("region_has_leader", r.HasLeader(), "region %d leader: store %d (TiKV's leader executes the split)", r.ID, r.Leader.StoreID)
		if prm.Policy == "usekey" {
			for _, k := range keys {
				inside := k > strings.ToUpper(r.StartKey) && (r.EndKey == "" || k < strings.ToUpper(r.EndKey))
				p.check("key_inside_region", inside, "key %s %s region %d [%q, %q)", k, map[bool]string{true: "is inside", false: "is not strictly inside"}[inside], r.ID, r.StartKey, r.EndKey)
			}
		} else {
			p.check("region_not_empty", r.ApproximateSize > 0 || r.ApproximateKeys > 0,
				"region %d approximate size %d MiB, %d keys", r.ID, r.ApproximateSize, r.ApproximateKeys)
		}
		body := map[string]any{"name": "split-region", "region_id": prm.RegionID, "policy": prm.Policy}
		if len(keys) > 0 {
			body["keys"] = keys
		}
		p.steps = []step{operatorStep(c, body)}
		p.previous = map[string]any{"region": regionSummary(r)}
		p.summary = fmt.Sprintf("split region %d [%q, %q) with policy %s", r.ID, r.StartKey, r.EndKey, prm.Policy)
		oldStart, oldEnd, oldVersion := r.StartKey, r.EndKey, r.Epoch.Version
		p.verify = operatorVerifier(c, Follow{
			RegionID: prm.RegionID, Desc: "admin-split-region", Ignore: rs.ignoreDesc(),
			Effect: func(ctx context.Context, now *pd.Region) (bool, string) {
				if now.Epoch.Version <= oldVersion {
					return false, fmt.Sprintf("region %d version still %d", now.ID, now.Epoch.Version)
				}
				parts, err := c.ScanRegions(ctx, oldStart, oldEnd, 64)
				if err != nil {
					return false, fmt.Sprintf("scanning the old range: %v", err)
				}
				ids := make([]string, 0, len(parts))
				for _, x := range parts {
					ids = append(ids, fmt.Sprint(x.ID))
				}
				return len(parts) >= 2, fmt.Sprintf("range [%q, %q) now covered by %d regions (%s)", oldStart, oldEnd, len(parts), strings.Join(ids, ", "))
			},
		})
		return p, nil
	})
}

// normalizeKeys checks hex keys and returns them uppercase, as PD renders
// keys.
func normalizeKeys(keys []string) ([]string, error) {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if k == "" {
			return nil, errors.New("empty split key")
		}
		if _, err := hex.DecodeString(k); err != nil {
			return nil, fmt.Errorf("split key %q is not hex: %v", k, err)
		}
		out = append(out, strings.ToUpper(k))
	}
	return out, nil
}

type peerParams struct {
	RegionID uint64 `json:"region_id"`
	StoreID  uint64 `json:"store_id"`
}

func addPeer() *pdAction {
	spec := action.Spec{
		Name:        ActionAddPeer,
		Description: "Add a voter of a region on a store that holds none (PD operator add-peer: a learner is added, caught up, then promoted).",
		Params: []action.Param{
			idParam("region_id", "id of the region"),
			idParam("store_id", "Up TiKV store that receives the new voter"),
		},
		Risk:       action.RiskMedium,
		Reversible: true,
		Rollback:   "remove_peer(region_id, store_id); PD's checkers also remove an extra replica above max-replicas by themselves",
		Targets:    []string{"region_id", "store_id"},
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm peerParams) (*plan, error) {
		p := &plan{}
		rs, err := loadRegion(ctx, c, p, prm.RegionID)
		if err != nil || rs == nil {
			return p, err
		}
		r := rs.region
		checkTargetStore(ctx, p, rs.stores, rs.now, prm.StoreID)
		peer, has := r.PeerOn(prm.StoreID)
		p.check("target_not_peer", !has, "store %d %s", prm.StoreID, peerRole(peer, has))
		q := RegionQuorum(r, rs.stores)
		checkQuorumNow(p, r.ID, q)
		after := Quorum{Voters: q.Voters + 1, Healthy: q.Healthy + 1}
		p.check("quorum_after", after.HasMajority(), "after adding: %d healthy of %d voters (needs %d)", after.Healthy, after.Voters, after.Majority())
		checkJointQuorumNow(p, r, rs.stores)
		p.check("region_not_joint", !inJointConsensus(r), "region %d in joint consensus: %v (PD leaves it first)", r.ID, inJointConsensus(r))
		rep, ok, err := loadReplication(ctx, c, p)
		if err != nil {
			return nil, err
		}
		if ok && uint64(after.Voters) > rep.maxReplicas {
			p.warn("region %d will have %d voters, above max-replicas %d: PD's checkers will remove an extra replica", r.ID, after.Voters, rep.maxReplicas)
		}
		body := map[string]any{"name": "add-peer", "region_id": prm.RegionID, "store_id": prm.StoreID}
		p.steps = []step{operatorStep(c, body)}
		p.previous = map[string]any{"region": regionSummary(r)}
		p.summary = fmt.Sprintf("add a voter of region %d on store %d", r.ID, prm.StoreID)
		p.verify = operatorVerifier(c, Follow{
			RegionID: prm.RegionID, Desc: "admin-add-peer", Ignore: rs.ignoreDesc(),
			Effect: func(_ context.Context, now *pd.Region) (bool, string) {
				pr, ok := now.PeerOn(prm.StoreID)
				return ok && pr.IsVoter(), fmt.Sprintf("store %d %s", prm.StoreID, peerRole(pr, ok))
			},
		})
		return p, nil
	})
}

func removePeer() *pdAction {
	spec := action.Spec{
		Name:        ActionRemovePeer,
		Description: "Remove a region's peer from a store (PD operator remove-peer; a leader there is transferred away first). Refused when the region would lose its majority of healthy voters.",
		Params: []action.Param{
			idParam("region_id", "id of the region"),
			idParam("store_id", "store whose peer is removed"),
		},
		Risk:       action.RiskHigh,
		Reversible: true,
		Rollback:   "add_peer(region_id, store_id); PD's replica checker also re-adds a missing replica by itself",
		Targets:    []string{"region_id", "store_id"},
		Capacity:   true,
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm peerParams) (*plan, error) {
		p := &plan{}
		rs, err := loadRegion(ctx, c, p, prm.RegionID)
		if err != nil || rs == nil {
			return p, err
		}
		r := rs.region
		peer, has := r.PeerOn(prm.StoreID)
		p.check("store_holds_peer", has, "store %d %s", prm.StoreID, peerRole(peer, has))
		q := RegionQuorum(r, rs.stores)
		checkQuorumNow(p, r.ID, q)
		checkJointQuorumNow(p, r, rs.stores)
		checkQuorumAfterRemoval(p, r, rs.stores, prm.StoreID)
		rep, ok, err := loadReplication(ctx, c, p)
		if err != nil {
			return nil, err
		}
		voters := 0
		for _, pr := range r.Peers {
			if pr.IsVoter() && pr.StoreID != prm.StoreID {
				voters++
			}
		}
		if ok && uint64(voters) < rep.maxReplicas {
			p.warn("region %d will have %d voters, below max-replicas %d: PD's replica checker will add one back", r.ID, voters, rep.maxReplicas)
		}
		if has && r.Leader.StoreID == prm.StoreID {
			p.warn("store %d holds the leader of region %d: PD transfers the leader away first", prm.StoreID, r.ID)
		}
		body := map[string]any{"name": "remove-peer", "region_id": prm.RegionID, "store_id": prm.StoreID}
		p.steps = []step{operatorStep(c, body)}
		p.previous = map[string]any{"region": regionSummary(r)}
		p.summary = fmt.Sprintf("remove the peer of region %d on store %d", r.ID, prm.StoreID)
		p.verify = operatorVerifier(c, Follow{
			RegionID: prm.RegionID, Desc: "admin-remove-peer", Ignore: rs.ignoreDesc(),
			Effect: func(_ context.Context, now *pd.Region) (bool, string) {
				pr, ok := now.PeerOn(prm.StoreID)
				return !ok, fmt.Sprintf("store %d %s", prm.StoreID, peerRole(pr, ok))
			},
		})
		return p, nil
	})
}

type transferPeerParams struct {
	RegionID    uint64 `json:"region_id"`
	FromStoreID uint64 `json:"from_store_id"`
	ToStoreID   uint64 `json:"to_store_id"`
}

func transferPeer() *pdAction {
	spec := action.Spec{
		Name:        ActionTransferPeer,
		Description: "Move a region's peer from one store to another (PD operator transfer-peer: add on the target, then remove from the source).",
		Params: []action.Param{
			idParam("region_id", "id of the region"),
			idParam("from_store_id", "store whose peer moves away"),
			idParam("to_store_id", "Up TiKV store that receives the peer; it must hold none"),
		},
		Risk:       action.RiskMedium,
		Reversible: true,
		Rollback:   "transfer_peer(region_id, from_store_id=to_store_id, to_store_id=from_store_id)",
		Targets:    []string{"region_id", "from_store_id", "to_store_id"},
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm transferPeerParams) (*plan, error) {
		p := &plan{}
		if !p.check("distinct_stores", prm.FromStoreID != prm.ToStoreID, "from_store_id %d and to_store_id %d", prm.FromStoreID, prm.ToStoreID) {
			return p, nil
		}
		rs, err := loadRegion(ctx, c, p, prm.RegionID)
		if err != nil || rs == nil {
			return p, err
		}
		r := rs.region
		from, hasFrom := r.PeerOn(prm.FromStoreID)
		p.check("source_holds_peer", hasFrom, "store %d %s", prm.FromStoreID, peerRole(from, hasFrom))
		checkTargetStore(ctx, p, rs.stores, rs.now, prm.ToStoreID)
		to, hasTo := r.PeerOn(prm.ToStoreID)
		p.check("target_not_peer", !hasTo, "store %d %s", prm.ToStoreID, peerRole(to, hasTo))
		q := RegionQuorum(r, rs.stores)
		checkQuorumNow(p, r.ID, q)
		after := q
		if hasFrom && from.IsVoter() {
			if _, bad := q.Unhealthy[prm.FromStoreID]; !bad {
				after.Healthy--
			}
			after.Healthy++ // the new voter on the target, once promoted
		}
		p.check("quorum_after", after.HasMajority(), "after the move: %d healthy of %d voters (needs %d)", after.Healthy, after.Voters, after.Majority())
		checkJointQuorumNow(p, r, rs.stores)
		p.check("region_not_joint", !inJointConsensus(r), "region %d in joint consensus: %v (PD leaves it first)", r.ID, inJointConsensus(r))
		body := map[string]any{"name": "transfer-peer", "region_id": prm.RegionID, "from_store_id": prm.FromStoreID, "to_store_id": prm.ToStoreID}
		p.steps = []step{operatorStep(c, body)}
		p.previous = map[string]any{"region": regionSummary(r)}
		p.summary = fmt.Sprintf("move the peer of region %d from store %d to store %d", r.ID, prm.FromStoreID, prm.ToStoreID)
		p.verify = operatorVerifier(c, Follow{
			RegionID: prm.RegionID, Desc: "admin-move-peer", Ignore: rs.ignoreDesc(),
			Effect: func(_ context.Context, now *pd.Region) (bool, string) {
				_, onFrom := now.PeerOn(prm.FromStoreID)
				pt, onTo := now.PeerOn(prm.ToStoreID)
				return !onFrom && onTo, fmt.Sprintf("store %d %s; store %d still holds a peer: %v", prm.ToStoreID, peerRole(pt, onTo), prm.FromStoreID, onFrom)
			},
		})
		return p, nil
	})
}

// checkQuorumNow records whether region id's voters have a healthy
// majority now, which PD needs to commit a conf change.
func checkQuorumNow(p *plan, id uint64, q Quorum) {
	p.check("quorum_now", q.HasMajority(), "region %d has %d healthy of %d voters (needs %d for a conf change)%s", id, q.Healthy, q.Voters, q.Majority(), unhealthyText(q))
}

func unhealthyText(q Quorum) string {
	if len(q.Unhealthy) == 0 {
		return ""
	}
	parts := make([]string, 0, len(q.Unhealthy))
	for id, why := range q.Unhealthy {
		parts = append(parts, fmt.Sprintf("store %d: %s", id, why))
	}
	slices.Sort(parts)
	return "; unhealthy voters: " + strings.Join(parts, ", ")
}

func peerListed(list []pd.DownPeer, id uint64) bool {
	for _, d := range list {
		if d.Peer.ID == id {
			return true
		}
	}
	return false
}

func pendingListed(list []pd.Peer, id uint64) bool {
	for _, p := range list {
		if p.ID == id {
			return true
		}
	}
	return false
}

func peerHealthText(r *pd.Region, id uint64) string {
	switch {
	case peerListed(r.DownPeers, id):
		return "reported down by the leader"
	case pendingListed(r.PendingPeers, id):
		return "pending (its log is behind)"
	}
	return "neither down nor pending"
}

// checkLeaderHome records whether store id may hold leaders at all: not
// under evict-leader-scheduler, no label listed under the reject-leader
// label property (GET /pd/api/v1/config/label-property), and, with
// placement rules enabled, allowed by every leader rule covering r (GET
// /pd/api/v1/config/rules).
func checkLeaderHome(ctx context.Context, c *pd.Client, p *plan, r *pd.Region, stores []pd.StoreInfo, id uint64) error {
	set, err := evictLeaderSet(ctx, c)
	if err != nil {
		return err
	}
	p.check("target_not_evicting", !set[id], "store %d under evict-leader-scheduler: %v", id, set[id])
	s := findStore(stores, id)
	if s == nil {
		return nil
	}
	props, err := c.LabelProperty(ctx)
	if err != nil {
		return err
	}
	reject := ""
	for _, l := range props["reject-leader"] {
		if s.Label(l.Key) == l.Value && l.Value != "" {
			reject = l.Key + "=" + l.Value
		}
	}
	p.check("target_accepts_leaders", reject == "", "store %d reject-leader label property: %s", id, map[bool]string{true: "none matches", false: reject}[reject == ""])
	rv, err := replicateView(ctx, c)
	if err != nil {
		return err
	}
	if enabled, _ := rv.str("enable-placement-rules"); enabled != "true" {
		return nil
	}
	rules, err := c.PlacementRules(ctx)
	if err != nil {
		return err
	}
	why := leaderRuleViolation(rules, r, s)
	p.check("placement_rules_allow_leader", why == "", "store %d: %s", id, map[bool]string{true: "no leader rule excludes it", false: why}[why == ""])
	return nil
}
