package tikv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/pd"
)

// OperatorResult is what following a region's operator saw last.
type OperatorResult struct {
	RegionID uint64
	// Status is the last status of the followed operator; "" when PD never
	// showed it (e.g. it finished and its record expired).
	Status pd.OperatorStatus
	// Operator is PD's description of it.
	Operator string
	// Done: the effect is visible (or the operator reported SUCCESS).
	Done bool
	// Failed: the operator ended without success (TIMEOUT, CANCEL,
	// REPLACE) and the effect is not visible; it will not happen.
	Failed bool
	// Detail describes the region as last read.
	Detail string
	// Region is the region as last read (nil if it could not be read).
	Region *pd.Region
}

// Follow tells FollowOperator which operator to watch and what success
// looks like.
type Follow struct {
	RegionID uint64
	// Desc is the prefix of the operator's description, e.g.
	// "admin-transfer-leader" (PD names admin operators "admin-<kind>").
	Desc string
	// Ignore is the full description of an operator seen before ours was
	// created (an old record PD keeps 10 minutes); it is not ours.
	Ignore string
	// Effect reports whether the region shows the intended change, and
	// describes it. Nil means only the operator's SUCCESS counts.
	Effect func(ctx context.Context, r *pd.Region) (bool, string)
	// Interval between reads; DefaultPollInterval when 0.
	Interval time.Duration
}

// FollowOperator polls GET /pd/api/v1/operators/{region_id} and GET
// /pd/api/v1/region/id/{region_id} until the effect is visible or the
// operator reports SUCCESS (Done), the operator ends as TIMEOUT, CANCEL or
// REPLACE without the effect (Failed), or ctx ends. It returns the last
// result; the error is ctx's when the deadline passed first, together with
// the last read error if any.
func FollowOperator(ctx context.Context, c *pd.Client, f Follow) (OperatorResult, error) {
	interval := f.Interval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last OperatorResult
	var lastErr error
	for {
		r, err := readOperator(ctx, c, f)
		if err == nil {
			last = r
			if r.Done || r.Failed {
				return r, nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, errors.Join(ctx.Err(), lastErr)
		case <-t.C:
		}
	}
}

// readOperator is one poll of FollowOperator.
func readOperator(ctx context.Context, c *pd.Client, f Follow) (OperatorResult, error) {
	res := OperatorResult{RegionID: f.RegionID}
	op, err := c.RegionOperator(ctx, f.RegionID)
	switch {
	case errors.Is(err, pd.ErrOperatorNotFound):
	case err != nil:
		return res, err
	case op.Desc == f.Ignore:
	case f.Desc != "" && !strings.HasPrefix(op.Desc, f.Desc):
		res.Detail = fmt.Sprintf("another operator on the region: %s %s; ", op.Status, firstWord(op.Desc))
	default:
		res.Status, res.Operator = op.Status, op.Desc
	}
	region, err := c.Region(ctx, f.RegionID)
	if errors.Is(err, pd.ErrRegionNotFound) {
		if res.Status == pd.OperatorRunning || res.Status == pd.OperatorCreated {
			// While a split is applied, PD drops the region from its cache
			// when the first new region's heartbeat overlaps its old range,
			// and takes it back at its own next heartbeat: keep polling.
			res.Detail += fmt.Sprintf("region %d not in PD's region cache while its operator runs", f.RegionID)
			return res, nil
		}
		res.Failed = true
		res.Detail += fmt.Sprintf("region %d no longer exists (merged?)", f.RegionID)
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.Region = region
	ok, detail := false, "region read"
	if f.Effect != nil {
		ok, detail = f.Effect(ctx, region)
	}
	res.Detail += detail
	switch {
	case ok || res.Status == pd.OperatorSuccess:
		res.Done = true
	case res.Status.Finished():
		res.Failed = true
	}
	return res, nil
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}

// operatorVerifier adapts readOperator to the catalog's poll loop.
func operatorVerifier(c *pd.Client, f Follow) func(context.Context) (verdict, error) {
	return func(ctx context.Context) (verdict, error) {
		r, err := readOperator(ctx, c, f)
		if err != nil {
			return verdict{}, err
		}
		status := string(r.Status)
		if status == "" {
			status = "not listed"
		}
		v := verdict{
			done:    r.Done,
			failed:  r.Failed,
			running: !r.Done && !r.Failed && (r.Status == pd.OperatorRunning || r.Status == pd.OperatorCreated),
			msg:     fmt.Sprintf("operator %s; %s", status, r.Detail),
			observed: map[string]any{
				"operator_status": status,
				"region":          regionSummary(r.Region),
			},
		}
		if r.Operator != "" {
			v.observed["operator"] = r.Operator
		}
		return v, nil
	}
}

// currentOperatorDesc returns the description of the operator PD shows for
// the region now ("" if none), so that following ignores it.
func currentOperatorDesc(ctx context.Context, c *pd.Client, regionID uint64) (*pd.RegionOperator, error) {
	op, err := c.RegionOperator(ctx, regionID)
	if errors.Is(err, pd.ErrOperatorNotFound) {
		return nil, nil
	}
	return op, err
}

// RegionSummary is the compact form of a region kept in audit snapshots and
// outcomes.
type RegionSummary struct {
	ID            uint64   `json:"id"`
	StartKey      string   `json:"start_key"`
	EndKey        string   `json:"end_key"`
	ConfVer       uint64   `json:"conf_ver"`
	Version       uint64   `json:"version"`
	LeaderStoreID uint64   `json:"leader_store_id"`
	VoterStores   []uint64 `json:"voter_store_ids"`
	LearnerStores []uint64 `json:"learner_store_ids,omitempty"`
	DownPeers     []uint64 `json:"down_peer_store_ids,omitempty"`
	PendingPeers  []uint64 `json:"pending_peer_store_ids,omitempty"`
	SizeMiB       int64    `json:"approximate_size_mib"`
	Keys          int64    `json:"approximate_keys"`
}

func regionSummary(r *pd.Region) *RegionSummary {
	if r == nil {
		return nil
	}
	s := &RegionSummary{
		ID: r.ID, StartKey: r.StartKey, EndKey: r.EndKey, ConfVer: r.Epoch.ConfVer, Version: r.Epoch.Version,
		LeaderStoreID: r.Leader.StoreID, SizeMiB: r.ApproximateSize, Keys: r.ApproximateKeys,
		VoterStores: []uint64{},
	}
	for _, p := range r.Peers {
		if p.IsVoter() {
			s.VoterStores = append(s.VoterStores, p.StoreID)
		} else {
			s.LearnerStores = append(s.LearnerStores, p.StoreID)
		}
	}
	for _, d := range r.DownPeers {
		s.DownPeers = append(s.DownPeers, d.Peer.StoreID)
	}
	for _, p := range r.PendingPeers {
		s.PendingPeers = append(s.PendingPeers, p.StoreID)
	}
	return s
}
