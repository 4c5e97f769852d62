package tikv

import (
	"fmt"
	"strings"

	"github.com/tikvops/operator/internal/pd"
)

// Peer role names as PD renders them in role_name (PD >= 4.x,
// metapb.PeerRole).
const (
	roleVoter         = "Voter"
	roleLearner       = "Learner"
	roleIncomingVoter = "IncomingVoter"
	roleDemotingVoter = "DemotingVoter"
)

// peerRoleName returns the peer's role, deriving it from the numeric role
// (0 Voter, 1 Learner, 2 IncomingVoter, 3 DemotingVoter) when PD sent no
// role_name.
func peerRoleName(p pd.Peer) string {
	if p.RoleName != "" {
		return p.RoleName
	}
	switch {
	case p.IsLearner || p.Role == 1:
		return roleLearner
	case p.Role == 2:
		return roleIncomingVoter
	case p.Role == 3:
		return roleDemotingVoter
	}
	return roleVoter
}

// inJointConsensus reports whether the region is between two
// configurations (some peer is IncomingVoter or DemotingVoter).
func inJointConsensus(r *pd.Region) bool {
	for _, p := range r.Peers {
		switch peerRoleName(p) {
		case roleIncomingVoter, roleDemotingVoter:
			return true
		}
	}
	return false
}

// voterConfig is one voter configuration a commit needs a majority of.
type voterConfig struct {
	name   string // "voters", or "incoming"/"outgoing" in joint consensus
	voters []pd.Peer
}

// voterConfigs splits r's voters into the configurations Raft needs a
// majority of: one outside joint consensus; in joint consensus the
// incoming configuration (Voter + IncomingVoter) and the outgoing one
// (Voter + DemotingVoter), each of which must keep its own majority.
func voterConfigs(r *pd.Region) []voterConfig {
	if !inJointConsensus(r) {
		var v []pd.Peer
		for _, p := range r.Peers {
			if p.IsVoter() {
				v = append(v, p)
			}
		}
		return []voterConfig{{name: "voters", voters: v}}
	}
	var in, out []pd.Peer
	for _, p := range r.Peers {
		switch peerRoleName(p) {
		case roleVoter:
			in, out = append(in, p), append(out, p)
		case roleIncomingVoter:
			in = append(in, p)
		case roleDemotingVoter:
			out = append(out, p)
		}
	}
	return []voterConfig{{name: "incoming", voters: in}, {name: "outgoing", voters: out}}
}

// configQuorum is RegionQuorum over one voter configuration, without the
// peer on store without (0: none).
func configQuorum(r *pd.Region, cfg voterConfig, stores []pd.StoreInfo, without uint64) Quorum {
	peers := make([]pd.Peer, 0, len(cfg.voters))
	for _, p := range cfg.voters {
		if p.StoreID != without {
			// RegionQuorum counts IsVoter peers; normalise roles.
			peers = append(peers, pd.Peer{ID: p.ID, StoreID: p.StoreID, RoleName: roleVoter})
		}
	}
	return RegionQuorum(&pd.Region{ID: r.ID, Peers: peers, DownPeers: r.DownPeers, PendingPeers: r.PendingPeers}, stores)
}

// checkQuorumAfterRemoval records quorum_after for every voter
// configuration of r once the peer on store is gone: each configuration
// (both, in joint consensus) must keep a healthy majority.
func checkQuorumAfterRemoval(p *plan, r *pd.Region, stores []pd.StoreInfo, store uint64) {
	for _, cfg := range voterConfigs(r) {
		q := configQuorum(r, cfg, stores, store)
		label := ""
		if cfg.name != "voters" {
			label = " in the " + cfg.name + " configuration (joint consensus)"
		}
		p.check("quorum_after", q.HasMajority(), "after removing the peer on store %d: %d healthy of %d voters%s (needs %d)",
			store, q.Healthy, q.Voters, label, q.Majority())
	}
}

// checkJointQuorumNow records quorum_now per configuration when r is in
// joint consensus (outside it, checkQuorumNow covers the single set).
func checkJointQuorumNow(p *plan, r *pd.Region, stores []pd.StoreInfo) {
	if !inJointConsensus(r) {
		return
	}
	for _, cfg := range voterConfigs(r) {
		q := configQuorum(r, cfg, stores, 0)
		p.check("quorum_now", q.HasMajority(), "region %d %s configuration (joint consensus): %d healthy of %d voters (needs %d)%s",
			r.ID, cfg.name, q.Healthy, q.Voters, q.Majority(), unhealthyText(q))
	}
}

// matchConstraints reports whether store s satisfies every placement-rule
// label constraint (PD v8.1 pkg/schedule/placement/label_constraint.go:
// in, notIn, exists, notExists).
func matchConstraints(s *pd.StoreInfo, cs []pd.LabelConstraint) (bool, string) {
	for _, c := range cs {
		v := s.Label(c.Key)
		has := false
		for _, l := range s.Store.Labels {
			if l.Key == c.Key {
				has = true
			}
		}
		in := false
		for _, want := range c.Values {
			if v == want {
				in = true
			}
		}
		ok := false
		switch c.Op {
		case "in":
			ok = has && in
		case "notIn":
			ok = !has || !in
		case "exists":
			ok = has
		case "notExists":
			ok = !has
		default:
			return false, fmt.Sprintf("unknown label constraint op %q", c.Op)
		}
		if !ok {
			return false, fmt.Sprintf("%s %s [%s] (store has %s=%q)", c.Key, c.Op, strings.Join(c.Values, ","), c.Key, v)
		}
	}
	return true, ""
}

// ruleCovers reports whether a rule's key range [start, end) (hex, "" =
// unbounded) contains the region's whole range.
func ruleCovers(rule pd.PlacementRule, r *pd.Region) bool {
	rs, re := strings.ToUpper(rule.StartKey), strings.ToUpper(rule.EndKey)
	start, end := strings.ToUpper(r.StartKey), strings.ToUpper(r.EndKey)
	if rs != "" && start < rs {
		return false
	}
	if re != "" && (end == "" || end > re) {
		return false
	}
	return true
}

// leaderRuleViolation returns why store s may not hold r's leader under the
// placement rules ("" when it may): a rule of role leader covering the
// region whose label constraints s does not satisfy.
func leaderRuleViolation(rules []pd.PlacementRule, r *pd.Region, s *pd.StoreInfo) string {
	for _, rule := range rules {
		if rule.Role != "leader" || !ruleCovers(rule, r) || len(rule.LabelConstraints) == 0 {
			continue
		}
		if ok, why := matchConstraints(s, rule.LabelConstraints); !ok {
			return fmt.Sprintf("placement rule %s/%s (role leader) requires %s", rule.GroupID, rule.ID, why)
		}
	}
	return ""
}
