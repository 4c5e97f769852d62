package tikvsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/pingcap/kvproto/pkg/metapb"
	"github.com/pingcap/kvproto/pkg/pdpb"
)

// pumpTick is how often the heartbeat pump looks for regions whose periodic
// or hot heartbeat is due.
const pumpTick = 500 * time.Millisecond

// hotReportInterval is the interval a hot region's heartbeat claims, in
// seconds: PD's hot peer cache only counts write reports covering >= 60 s
// (PD pkg/statistics/utils RegionHeartBeatReportInterval; notes fact 10).
const hotReportInterval = 60

// Sim is a set of simulated TiKV stores attached to one PD. Create it with
// [Start]; stop it with [Sim.Close]. All methods are safe for concurrent use.
type Sim struct {
	cfg Config
	log *slog.Logger
	pd  *pdClient

	mu         sync.Mutex
	stores     map[uint64]*store
	storeOrder []uint64 // store IDs in creation order
	regions    map[uint64]*region
	dirty      map[uint64]struct{} // region IDs whose state changed
	closed     bool
	setup      time.Duration
	pdErr      string // last PD error, "" when the last call succeeded
	hbPaused   bool   // PauseStoreHeartbeats: no store heartbeat is sent

	loopCtx context.Context // the heartbeat loops' context (AddStore)
	kick    chan struct{}   // wakes the pump
	hbKick  chan struct{}   // wakes the store heartbeat loop
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started time.Time
}

// store is one simulated TiKV store; guarded by Sim.mu.
type store struct {
	meta      *metapb.Store
	stopped   bool
	stoppedAt time.Time
	tombstone bool
	startTime time.Time

	available *uint64 // override of capacity - used, bytes
	slowScore uint64
	busy      bool
	// applyDelay postpones every PD command a region led by this store
	// receives (SetApplyDelay); 0 applies at once, as TiKV does.
	applyDelay time.Duration
	// ignoreCommands drops every PD command a region led by this store
	// receives (SetIgnoreCommands): PD's operator never progresses.
	ignoreCommands bool

	lastHB    time.Time // last successful store heartbeat
	lastHBErr string

	// status is the store's status server (Config.StatusServer); cpu and
	// other meter its write-path and other thread CPU.
	status     *http.Server
	cpu, other *cpuMeter

	streamUp bool
	queue    []*pdpb.RegionHeartbeatRequest
	signal   chan struct{}
}

func (st *store) alive() bool { return !st.stopped && !st.tombstone }

// Start connects to PD, bootstraps a fresh cluster with cfg.Stores stores
// and cfg.Regions regions (IDs allocated by PD), and starts the heartbeat
// loops. It returns once every region has been heartbeated once; ctx bounds
// only this setup, the loops run until Close. It waits for PD to answer
// GetMembers while ctx allows. It fails with ErrInvalidConfig,
// ErrAlreadyBootstrapped, a *PDError or a transport error.
func Start(ctx context.Context, cfg Config) (*Sim, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pd, err := dialPD(cfg.PD)
	if err != nil {
		return nil, err
	}
	s := &Sim{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "tikvsim"),
		pd:      pd,
		stores:  make(map[uint64]*store),
		regions: make(map[uint64]*region, cfg.Regions),
		dirty:   make(map[uint64]struct{}),
		kick:    make(chan struct{}, 1),
		hbKick:  make(chan struct{}, 1),
		started: time.Now(),
	}
	if err := s.bootstrap(ctx); err != nil {
		s.stopStatusServers()
		_ = pd.close()
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.loopCtx = loopCtx
	for _, id := range s.storeOrder {
		st := s.stores[id]
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.runStream(loopCtx, st)
		}()
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.runPump(loopCtx)
	}()
	go func() {
		defer s.wg.Done()
		s.runStoreHeartbeats(loopCtx)
	}()
	if err := s.waitAllSent(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	s.mu.Lock()
	s.setup = time.Since(s.started)
	s.mu.Unlock()
	s.log.Info("simulated stores ready", "stores", cfg.Stores, "regions", cfg.Regions, "setup", s.setup.Round(time.Millisecond))
	return s, nil
}

// Close stops all loops and closes the gRPC connection. PD then sees the
// stores stop heartbeating. Close is idempotent.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.stopStatusServers()
	return s.pd.close()
}

// SetupDuration is how long Start took (connect, alloc IDs, bootstrap, first
// heartbeat of every region).
func (s *Sim) SetupDuration() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setup
}

// ClusterID is the PD cluster ID (from GetMembers).
func (s *Sim) ClusterID() uint64 { return s.pd.clusterID }

// StoreIDs returns the simulated store IDs in creation order; the first is
// the bootstrap store (and the leader store with SkewLeaders).
func (s *Sim) StoreIDs() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.storeOrder...)
}

func (s *Sim) bootstrap(ctx context.Context) error {
	var err error
	for {
		s.pd.clusterID, err = s.pd.fetchClusterID(ctx)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for PD at %s: %w (last error: %v)", s.cfg.PD, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	ok, err := s.pd.isBootstrapped(ctx)
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("%w: PD at %s (cluster %d); start the simulator against a fresh PD", ErrAlreadyBootstrapped, s.cfg.PD, s.pd.clusterID)
	}
	n, m, r := s.cfg.Stores, s.cfg.Regions, s.cfg.Replicas
	ids, err := s.pd.allocIDs(ctx, n+m+m*r)
	if err != nil {
		return fmt.Errorf("allocate IDs: %w", err)
	}
	storeIDs, ids := ids[:n], ids[n:]
	regionIDs, peerIDs := ids[:m], ids[m:]
	now := time.Now()
	for i, id := range storeIDs {
		meta := &metapb.Store{
			Id:             id,
			Address:        fmt.Sprintf("127.0.0.1:%d", 20160+i),
			StatusAddress:  fmt.Sprintf("127.0.0.1:%d", 40160+i),
			Version:        s.cfg.Version,
			GitHash:        "tikvsim",
			StartTimestamp: now.Unix(),
			DeployPath:     "/tikvsim",
		}
		if len(s.cfg.Labels) > 0 {
			labels := s.cfg.Labels[i%len(s.cfg.Labels)]
			keys := make([]string, 0, len(labels))
			for k := range labels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				meta.Labels = append(meta.Labels, &metapb.StoreLabel{Key: k, Value: labels[k]})
			}
		}
		st := &store{meta: meta, startTime: now, signal: make(chan struct{}, 1)}
		s.stores[id] = st
		s.storeOrder = append(s.storeOrder, id)
		if s.cfg.StatusServer {
			if err := s.startStatusServer(st, now); err != nil {
				return err
			}
		}
	}
	for i := 0; i < m; i++ {
		meta := &metapb.Region{
			Id:          regionIDs[i],
			StartKey:    regionKey(i),
			EndKey:      regionKey(i + 1),
			RegionEpoch: &metapb.RegionEpoch{ConfVer: 2, Version: 2},
		}
		if i+1 == m {
			meta.EndKey = nil
		}
		var leader uint64
		for j, storeIdx := range placement(i, n, r, s.cfg.SkewLeaders) {
			p := &metapb.Peer{Id: peerIDs[i*r+j], StoreId: storeIDs[storeIdx]}
			meta.Peers = append(meta.Peers, p)
			if j == 0 {
				leader = p.Id
			}
		}
		s.regions[meta.Id] = &region{meta: meta, leaderID: leader, term: 1, size: s.cfg.RegionSize, keys: s.cfg.RegionKeys}
		s.dirty[meta.Id] = struct{}{}
	}
	// Bootstrap with the first store and the first region reduced to one
	// peer on it and the whole key space (notes fact 2).
	first := s.regions[regionIDs[0]]
	boot := &metapb.Region{
		Id:          first.id(),
		RegionEpoch: &metapb.RegionEpoch{ConfVer: 1, Version: 1},
		Peers:       []*metapb.Peer{clonePeer(first.leader())},
	}
	if err := s.pd.bootstrap(ctx, s.stores[storeIDs[0]].meta, boot); err != nil {
		return err
	}
	for _, id := range storeIDs[1:] {
		if err := s.pd.putStore(ctx, s.stores[id].meta); err != nil {
			return err
		}
	}
	for _, id := range storeIDs {
		s.mu.Lock()
		stats := s.storeStatsLocked(time.Now(), s.usageLocked())[id]
		s.mu.Unlock()
		if err := s.pd.storeHeartbeat(ctx, stats); err != nil {
			return err
		}
		s.mu.Lock()
		s.stores[id].lastHB = time.Now()
		s.mu.Unlock()
	}
	return nil
}

// placement returns the store indexes of region i's peers; the first is the
// leader. Without skew, peers rotate over the stores; with skew, store 0
// holds every leader and the other peers rotate over the remaining stores.
func placement(i, n, r int, skew bool) []int {
	out := make([]int, 0, r)
	if !skew || n == 1 {
		for j := 0; j < r; j++ {
			out = append(out, (i+j)%n)
		}
		return out
	}
	out = append(out, 0)
	for j := 0; j < r-1; j++ {
		out = append(out, 1+(i+j)%(n-1))
	}
	return out
}

// regionKey is the start key of initial region i: "" for 0, else
// "z" + 8 digits ("z00000001" = hex 7A3030303030303031). PD's own
// keyspace splits (encoded keys 7200..FB and 7800..FB) all fall in the
// first region, which PD's region patrol visits first, so they finish
// within a few seconds even at 10k regions.
func regionKey(i int) []byte {
	if i == 0 {
		return nil
	}
	return []byte(fmt.Sprintf("z%08d", i))
}

func (s *Sim) waitAllSent(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		left := 0
		for _, r := range s.regions {
			if !r.sent {
				left++
			}
		}
		s.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for first region heartbeats (%d left): %w", left, ctx.Err())
		case <-t.C:
		}
	}
}

func (s *Sim) kickPump() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Sim) kickStoreHeartbeats() {
	select {
	case s.hbKick <- struct{}{}:
	default:
	}
}

func (s *Sim) markDirtyLocked(r *region) {
	s.dirty[r.id()] = struct{}{}
}

// runPump queues region heartbeats on the leader store's stream: at once for
// regions whose state changed, every RegionHeartbeat for the rest, every
// HotHeartbeat for regions with a write flow.
func (s *Sim) runPump(ctx context.Context) {
	t := time.NewTicker(pumpTick)
	defer t.Stop()
	for {
		full := false
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
			full = true
		}
		s.pump(time.Now(), full)
	}
}

func (s *Sim) pump(now time.Time, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	touched := map[*store]bool{}
	send := func(r *region) bool {
		st := s.stores[r.leaderStore()]
		if r.silent {
			return true // nothing to send while the leader is silent
		}
		if st == nil || !st.alive() || !st.streamUp {
			return false
		}
		st.queue = append(st.queue, s.heartbeatLocked(r, now))
		touched[st] = true
		if !r.sent {
			r.sent = true
			// Spread later periodic heartbeats over the interval.
			r.lastHB = now.Add(-time.Duration(r.id()%997) * s.cfg.RegionHeartbeat / 997)
		} else {
			r.lastHB = now
		}
		return true
	}
	for id := range s.dirty {
		r := s.regions[id]
		if r == nil || send(r) {
			delete(s.dirty, id)
		}
	}
	if full {
		for _, r := range s.regions {
			age := now.Sub(r.lastHB)
			if !r.sent || age >= s.cfg.RegionHeartbeat || (r.hot() && age >= s.cfg.HotHeartbeat) {
				send(r)
			}
		}
	}
	for st := range touched {
		select {
		case st.signal <- struct{}{}:
		default:
		}
	}
}

// heartbeatLocked builds a region heartbeat request from the leader's view.
func (s *Sim) heartbeatLocked(r *region, now time.Time) *pdpb.RegionHeartbeatRequest {
	req := &pdpb.RegionHeartbeatRequest{
		Header:          s.pd.header(),
		Region:          cloneRegion(r.meta),
		Leader:          clonePeer(r.leader()),
		ApproximateSize: r.size,
		ApproximateKeys: r.keys,
		Term:            r.term,
	}
	start := r.lastHB
	if !r.sent || start.IsZero() {
		start = now
	}
	req.Interval = &pdpb.TimeInterval{StartTimestamp: uint64(start.Unix()), EndTimestamp: uint64(now.Unix())}
	if r.hot() {
		req.Interval.StartTimestamp = uint64(now.Unix()) - hotReportInterval
		req.BytesWritten = r.writeBytes * hotReportInterval
		req.KeysWritten = r.writeKeys * hotReportInterval
		req.QueryStats = &pdpb.QueryStats{Put: r.writeKeys * hotReportInterval}
	}
	for _, p := range r.meta.GetPeers() {
		if p.GetId() == r.leaderID {
			continue
		}
		since, down := r.down[p.GetStoreId()]
		if st := s.stores[p.GetStoreId()]; st != nil && st.stopped && (!down || st.stoppedAt.Before(since)) {
			since, down = st.stoppedAt, true
		}
		if down {
			req.DownPeers = append(req.DownPeers, &pdpb.PeerStats{Peer: clonePeer(p), DownSeconds: uint64(now.Sub(since).Seconds())})
		}
		if r.pending[p.GetStoreId()] || down {
			req.PendingPeers = append(req.PendingPeers, clonePeer(p))
		}
	}
	return req
}

// runStream keeps one RegionHeartbeat stream open for a store (notes fact
// 4), sends what the pump queued and applies PD's responses. It reconnects
// with backoff when PD goes away.
func (s *Sim) runStream(ctx context.Context, st *store) {
	log := s.log.With("store", st.meta.GetId())
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.streamOnce(ctx, st)
		if ctx.Err() != nil {
			return
		}
		log.Debug("region heartbeat stream ended", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (s *Sim) streamOnce(ctx context.Context, st *store) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.pd.pd.RegionHeartbeat(sctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	st.streamUp = true
	st.queue = nil
	for _, r := range s.regions {
		if r.leaderStore() == st.meta.GetId() {
			s.markDirtyLocked(r)
		}
	}
	s.mu.Unlock()
	s.kickPump()
	defer func() {
		s.mu.Lock()
		st.streamUp = false
		for _, r := range s.regions {
			if r.leaderStore() == st.meta.GetId() {
				s.markDirtyLocked(r)
			}
		}
		st.queue = nil
		s.mu.Unlock()
	}()

	recvErr := make(chan error, 1)
	recvDone := make(chan struct{})
	// Wait for the receiver on every return, so no response is handled
	// after the stream (and, at Close, the simulator) is gone.
	defer func() {
		cancel()
		<-recvDone
	}()
	go func() {
		defer close(recvDone)
		for {
			resp, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if err := checkHeader("RegionHeartbeat", resp.GetHeader()); err != nil {
				s.notePDError(err)
				continue
			}
			s.handleResponse(ctx, st.meta.GetId(), resp)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-recvErr:
			return err
		case <-st.signal:
			s.mu.Lock()
			q := st.queue
			st.queue = nil
			s.mu.Unlock()
			for _, req := range q {
				if err := stream.Send(req); err != nil {
					return err
				}
			}
		}
	}
}

func (s *Sim) notePDError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pdErr != err.Error() {
		s.log.Warn("PD error", "err", err)
	}
	s.pdErr = err.Error()
}

func (s *Sim) notePDOK() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pdErr != "" {
		s.log.Info("PD reachable again")
	}
	s.pdErr = ""
}

// handleResponse carries out a command PD sent on storeID's stream. It is
// ignored unless the region's epoch and leader still match (notes facts 5, 6).
func (s *Sim) handleResponse(ctx context.Context, storeID uint64, resp *pdpb.RegionHeartbeatResponse) {
	s.handleResponseAfter(ctx, storeID, resp, false)
}

// handleResponseAfter is handleResponse; delayed marks a command that
// already waited for the store's apply delay.
func (s *Sim) handleResponseAfter(ctx context.Context, storeID uint64, resp *pdpb.RegionHeartbeatResponse, delayed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stores[storeID]
	r := s.regions[resp.GetRegionId()]
	if s.closed || st == nil || !st.alive() || r == nil || r.splitting || r.silent {
		return
	}
	if st.ignoreCommands {
		s.log.Debug("command ignored (SetIgnoreCommands)", "store", storeID, "region", r.id())
		return
	}
	if delayed {
		r.delaying = false
	} else if st.applyDelay > 0 {
		// A slow store: PD's command is carried out after the delay (one
		// at a time per region; PD repeats it on every heartbeat meanwhile).
		if r.delaying {
			return
		}
		r.delaying = true
		d := st.applyDelay
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
			s.handleResponseAfter(ctx, storeID, resp, true)
		}()
		return
	}
	if !epochEqual(r.meta.GetRegionEpoch(), resp.GetRegionEpoch()) {
		return
	}
	if r.leaderStore() != storeID || (resp.GetTargetPeer() != nil && resp.GetTargetPeer().GetId() != r.leaderID) {
		return
	}
	log := s.log.With("region", r.id())
	var (
		changed bool
		err     error
	)
	switch {
	case resp.GetTransferLeader() != nil:
		changed = r.transferLeader(resp.GetTransferLeader(), func(id uint64) bool {
			t := s.stores[id]
			return t != nil && t.alive()
		})
	case resp.GetChangePeer() != nil:
		changed, err = r.changePeer(resp.GetChangePeer())
	case resp.GetChangePeerV2() != nil:
		changed, err = r.changePeerV2(resp.GetChangePeerV2())
	case resp.GetSplitRegion() != nil:
		keys := r.splitKeys(resp.GetSplitRegion())
		if len(keys) == 0 {
			log.Debug("split without usable keys ignored")
			return
		}
		r.splitting = true
		meta := cloneRegion(r.meta)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.split(ctx, meta, keys)
		}()
	case resp.GetMerge() != nil:
		changed, err = s.mergeLocked(r, resp.GetMerge().GetTarget())
	}
	if err != nil {
		log.Debug("command refused", "err", err)
	}
	if changed {
		s.markDirtyLocked(r)
		s.kickPump()
	}
}

// split asks PD for IDs, applies the split and reports it; the new regions
// then heartbeat (notes fact 7).
func (s *Sim) split(ctx context.Context, meta *metapb.Region, keys [][]byte) {
	log := s.log.With("region", meta.GetId())
	done := func() {
		s.mu.Lock()
		if r := s.regions[meta.GetId()]; r != nil {
			r.splitting = false
		}
		s.mu.Unlock()
	}
	ids, err := s.pd.askBatchSplit(ctx, meta, len(keys))
	if err != nil {
		log.Warn("ask batch split", "err", err)
		done()
		return
	}
	s.mu.Lock()
	r := s.regions[meta.GetId()]
	if r == nil || !epochEqual(r.meta.GetRegionEpoch(), meta.GetRegionEpoch()) {
		if r != nil {
			r.splitting = false
		}
		s.mu.Unlock()
		return
	}
	r.splitting = false
	news, err := r.splitInto(keys, ids)
	if err != nil {
		s.mu.Unlock()
		log.Warn("split", "err", err)
		return
	}
	report := make([]*metapb.Region, 0, len(news)+1)
	for _, nr := range news {
		s.regions[nr.id()] = nr
		s.markDirtyLocked(nr)
		report = append(report, cloneRegion(nr.meta))
	}
	s.markDirtyLocked(r)
	report = append(report, cloneRegion(r.meta))
	s.mu.Unlock()
	log.Debug("split", "new_regions", len(news))
	if err := s.pd.reportBatchSplit(ctx, report); err != nil {
		log.Warn("report batch split", "err", err)
	}
	s.kickPump()
}

// mergeLocked merges source r into target (TiKV: the target takes the
// source's range and version max(source, target)+1; the source disappears).
// It marks the target dirty itself and reports false because the source,
// the region the command was for, no longer exists.
func (s *Sim) mergeLocked(r *region, target *metapb.Region) (bool, error) {
	t := s.regions[target.GetId()]
	if t == nil || t == r {
		return false, fmt.Errorf("merge target %d unknown", target.GetId())
	}
	if !epochEqual(t.meta.GetRegionEpoch(), target.GetRegionEpoch()) {
		return false, fmt.Errorf("merge target %d epoch changed", target.GetId())
	}
	if !sameStores(r.meta, t.meta) || inJoint(r.meta) || inJoint(t.meta) {
		return false, fmt.Errorf("merge target %d has peers on other stores", target.GetId())
	}
	switch {
	case len(r.meta.GetEndKey()) > 0 && string(r.meta.GetEndKey()) == string(t.meta.GetStartKey()):
		t.meta.StartKey = r.meta.StartKey
	case len(t.meta.GetEndKey()) > 0 && string(t.meta.GetEndKey()) == string(r.meta.GetStartKey()):
		t.meta.EndKey = r.meta.EndKey
	default:
		return false, fmt.Errorf("merge target %d not adjacent", target.GetId())
	}
	t.meta.RegionEpoch.Version = max(t.meta.GetRegionEpoch().GetVersion(), r.meta.GetRegionEpoch().GetVersion()) + 1
	t.size += r.size
	t.keys += r.keys
	delete(s.regions, r.id())
	delete(s.dirty, r.id())
	s.markDirtyLocked(t)
	s.kickPump()
	return false, nil
}

// usage is per-store peer and size totals.
type usage struct {
	peers, leaders     int
	size               uint64
	writeBytes, writeK uint64
}

func (s *Sim) usageLocked() map[uint64]*usage {
	u := make(map[uint64]*usage, len(s.stores))
	for id := range s.stores {
		u[id] = &usage{}
	}
	for _, r := range s.regions {
		for _, p := range r.meta.GetPeers() {
			if x := u[p.GetStoreId()]; x != nil {
				x.peers++
				x.size += r.size
				if p.GetId() == r.leaderID {
					x.leaders++
					x.writeBytes += r.writeBytes
					x.writeK += r.writeKeys
				}
			}
		}
	}
	return u
}

func (s *Sim) availableLocked(st *store, used uint64) uint64 {
	if st.available != nil {
		return *st.available
	}
	if used >= s.cfg.Capacity {
		return 0
	}
	return s.cfg.Capacity - used
}

func (s *Sim) storeStatsLocked(now time.Time, u map[uint64]*usage) map[uint64]*pdpb.StoreStats {
	out := make(map[uint64]*pdpb.StoreStats, len(s.stores))
	for id, st := range s.stores {
		x := u[id]
		start := st.lastHB
		if start.IsZero() || start.Before(st.startTime) {
			start = now
		}
		secs := uint64(now.Sub(start).Seconds())
		out[id] = &pdpb.StoreStats{
			StoreId:      id,
			Capacity:     s.cfg.Capacity,
			Available:    s.availableLocked(st, x.size),
			UsedSize:     x.size,
			RegionCount:  uint32(x.peers),
			StartTime:    uint32(st.startTime.Unix()),
			IsBusy:       st.busy,
			SlowScore:    st.slowScore,
			BytesWritten: x.writeBytes * secs,
			KeysWritten:  x.writeK * secs,
			Interval:     &pdpb.TimeInterval{StartTimestamp: uint64(start.Unix()), EndTimestamp: uint64(now.Unix())},
		}
	}
	return out
}

// runStoreHeartbeats sends a store heartbeat for every running store every
// StoreHeartbeat, and at once when a store restarts.
func (s *Sim) runStoreHeartbeats(ctx context.Context) {
	t := time.NewTicker(s.cfg.StoreHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.hbKick:
		}
		s.storeHeartbeats(ctx)
	}
}

func (s *Sim) storeHeartbeats(ctx context.Context) {
	now := time.Now()
	s.mu.Lock()
	if s.hbPaused {
		s.mu.Unlock()
		return
	}
	stats := s.storeStatsLocked(now, s.usageLocked())
	ids := make([]uint64, 0, len(s.storeOrder))
	for _, id := range s.storeOrder {
		if s.stores[id].alive() {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		err := s.pd.storeHeartbeat(ctx, stats[id])
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		st := s.stores[id]
		if err == nil {
			st.lastHB, st.lastHBErr = now, ""
		} else {
			st.lastHBErr = err.Error()
			var pe *PDError
			if errors.As(err, &pe) && pe.Type == pdpb.ErrorType_STORE_TOMBSTONE {
				// PD buried the store: a real TiKV exits.
				st.tombstone = true
				s.log.Info("store is tombstone, stopping it", "store", id)
			}
		}
		s.mu.Unlock()
		if err != nil {
			s.notePDError(err)
		} else {
			s.notePDOK()
		}
	}
}
