package tikvsim

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pingcap/kvproto/pkg/metapb"
)

func (s *Sim) storeLocked(id uint64) (*store, error) {
	if s.closed {
		return nil, ErrClosed
	}
	st := s.stores[id]
	if st == nil {
		return nil, fmt.Errorf("%w: %d", ErrStoreNotFound, id)
	}
	return st, nil
}

func (s *Sim) regionLocked(id uint64) (*region, error) {
	if s.closed {
		return nil, ErrClosed
	}
	r := s.regions[id]
	if r == nil {
		return nil, fmt.Errorf("%w: %d", ErrRegionNotFound, id)
	}
	return r, nil
}

// StopStore stops a store's store and region heartbeats, as if its TiKV
// process died. Its leaders move to a live voter of each region, and those
// leaders report its peers as DownPeers (and pending), which lets PD replace
// them once the store is Down (notes fact 9). PD shows the store
// Disconnected 20 s after its last heartbeat and Down after
// max-store-down-time. Stopping a stopped store is a no-op. Errors:
// ErrStoreNotFound.
func (s *Sim) StopStore(storeID uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.storeLocked(storeID)
	if err != nil {
		return err
	}
	if st.stopped {
		return nil
	}
	st.stopped = true
	st.stoppedAt = time.Now()
	for _, r := range s.regions {
		if r.peerOnStore(storeID) == nil {
			continue
		}
		if r.leaderStore() == storeID {
			for _, p := range r.meta.GetPeers() {
				if t := s.stores[p.GetStoreId()]; p.GetStoreId() != storeID && canLead(p.GetRole()) && t != nil && t.alive() {
					r.leaderID = p.GetId()
					r.term++
					break
				}
			}
		}
		s.markDirtyLocked(r)
	}
	s.kickPump()
	s.log.Info("store stopped", "store", storeID)
	return nil
}

// StartStore resumes a stopped store's heartbeats with a new start time
// (a TiKV restart); PD shows it Up again at once. Its peers stop being
// reported down. Leaders stay where they are; PD's balance-leader scheduler
// moves some back. Starting a running store is a no-op. Errors:
// ErrStoreNotFound, ErrInvalidArgument for a store PD made Tombstone.
func (s *Sim) StartStore(storeID uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.storeLocked(storeID)
	if err != nil {
		return err
	}
	if st.tombstone {
		return fmt.Errorf("%w: store %d is tombstone in PD and cannot restart", ErrInvalidArgument, storeID)
	}
	if !st.stopped {
		return nil
	}
	st.stopped = false
	st.startTime = time.Now()
	st.meta.StartTimestamp = st.startTime.Unix()
	for _, r := range s.regions {
		if r.peerOnStore(storeID) != nil {
			s.markDirtyLocked(r)
		}
	}
	s.kickStoreHeartbeats()
	s.kickPump()
	s.log.Info("store started", "store", storeID)
	return nil
}

// SetAvailable overrides a store's available bytes (default: capacity minus
// the sum of its regions' sizes), e.g. to simulate low space. It is reported
// with the next store heartbeat (every StoreHeartbeat) and shows in
// GET /pd/api/v1/stores as status.available. Errors: ErrStoreNotFound,
// ErrInvalidArgument when available exceeds capacity.
func (s *Sim) SetAvailable(storeID, available uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.storeLocked(storeID)
	if err != nil {
		return err
	}
	if available > s.cfg.Capacity {
		return fmt.Errorf("%w: available %d exceeds capacity %d", ErrInvalidArgument, available, s.cfg.Capacity)
	}
	st.available = &available
	s.kickStoreHeartbeats()
	return nil
}

// ResetAvailable removes a SetAvailable override. Errors: ErrStoreNotFound.
func (s *Sim) ResetAvailable(storeID uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.storeLocked(storeID)
	if err != nil {
		return err
	}
	st.available = nil
	s.kickStoreHeartbeats()
	return nil
}

// SetSlowScore sets the slow score a store reports (1 = healthy .. 100;
// 0 = not reported). PD counts a store with score >= 80 as slow, and its
// evict-slow-store scheduler evicts the leaders of a single store at 100.
// Errors: ErrStoreNotFound, ErrInvalidArgument for a score above 100.
func (s *Sim) SetSlowScore(storeID, score uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.storeLocked(storeID)
	if err != nil {
		return err
	}
	if score > 100 {
		return fmt.Errorf("%w: slow score %d, want 0..100", ErrInvalidArgument, score)
	}
	st.slowScore = score
	s.kickStoreHeartbeats()
	return nil
}

// SetBusy sets the is_busy flag a store reports. Errors: ErrStoreNotFound.
func (s *Sim) SetBusy(storeID uint64, busy bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.storeLocked(storeID)
	if err != nil {
		return err
	}
	st.busy = busy
	s.kickStoreHeartbeats()
	return nil
}

// SetWriteFlow sets a region's write flow in bytes and keys per second (0, 0
// clears it). A region with a flow heartbeats every HotHeartbeat claiming a
// 60 s interval, so PD lists it in GET /pd/api/v1/hotspot/regions/write
// after about three heartbeats if the flow exceeds PD's hot threshold
// (a few MiB/s is plenty). Errors: ErrRegionNotFound.
func (s *Sim) SetWriteFlow(regionID, bytesPerSec, keysPerSec uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.regionLocked(regionID)
	if err != nil {
		return err
	}
	r.writeBytes, r.writeKeys = bytesPerSec, keysPerSec
	s.markDirtyLocked(r)
	s.kickPump()
	return nil
}

// SetRegionSize sets a region's approximate size in bytes and key count,
// reported with its next heartbeat (sent at once). Errors: ErrRegionNotFound.
func (s *Sim) SetRegionSize(regionID, sizeBytes, keys uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.regionLocked(regionID)
	if err != nil {
		return err
	}
	r.size, r.keys = sizeBytes, keys
	s.markDirtyLocked(r)
	s.kickPump()
	return nil
}

func (s *Sim) followerLocked(regionID, storeID uint64) (*region, error) {
	r, err := s.regionLocked(regionID)
	if err != nil {
		return nil, err
	}
	p := r.peerOnStore(storeID)
	if p == nil {
		return nil, fmt.Errorf("%w: region %d has no peer on store %d", ErrPeerNotFound, regionID, storeID)
	}
	if p.GetId() == r.leaderID {
		return nil, fmt.Errorf("%w: the peer of region %d on store %d is the leader; only followers can be pending or down", ErrInvalidArgument, regionID, storeID)
	}
	return r, nil
}

// SetPeerPending makes the region's leader report its peer on storeID as
// pending (lagging) or not; sent at once, shown by PD in
// GET /pd/api/v1/regions/check/pending-peer. Errors: ErrRegionNotFound,
// ErrPeerNotFound, ErrInvalidArgument for the leader's own peer.
func (s *Sim) SetPeerPending(regionID, storeID uint64, pending bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.followerLocked(regionID, storeID)
	if err != nil {
		return err
	}
	if pending {
		if r.pending == nil {
			r.pending = map[uint64]bool{}
		}
		r.pending[storeID] = true
	} else {
		delete(r.pending, storeID)
	}
	s.markDirtyLocked(r)
	s.kickPump()
	return nil
}

// SetPeerDown makes the region's leader report its peer on storeID as down
// (with down_seconds counted from now) or not; sent at once, shown by PD in
// GET /pd/api/v1/regions/check/down-peer. Errors: as SetPeerPending.
func (s *Sim) SetPeerDown(regionID, storeID uint64, down bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.followerLocked(regionID, storeID)
	if err != nil {
		return err
	}
	if down {
		if r.down == nil {
			r.down = map[uint64]time.Time{}
		}
		if _, ok := r.down[storeID]; !ok {
			r.down[storeID] = time.Now()
		}
	} else {
		delete(r.down, storeID)
	}
	s.markDirtyLocked(r)
	s.kickPump()
	return nil
}

// MoveLeaders makes the store's peer the leader of every region where it is
// a voter and alive (TiKV-side leader transfers, outside PD's control), to
// create or restore a leader skew at run time. It returns how many leaders
// moved. PD's balance-leader scheduler, unless paused, moves them back
// over the next minutes. Errors: ErrStoreNotFound, ErrInvalidArgument for
// a stopped store.
func (s *Sim) MoveLeaders(storeID uint64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.storeLocked(storeID)
	if err != nil {
		return 0, err
	}
	if !st.alive() {
		return 0, fmt.Errorf("%w: store %d is stopped", ErrInvalidArgument, storeID)
	}
	moved := 0
	for _, r := range s.regions {
		p := r.peerOnStore(storeID)
		if p == nil || p.GetId() == r.leaderID || !canLead(p.GetRole()) || r.splitting {
			continue
		}
		r.leaderID = p.GetId()
		r.term++
		s.markDirtyLocked(r)
		moved++
	}
	s.kickPump()
	return moved, nil
}

// SetApplyDelay makes storeID a slow store: every command PD sends for a
// region whose leader is on it (transfer leader, conf change, split,
// merge) is carried out d after it arrives instead of at once, so PD's
// operator stays RUNNING that long. 0 restores TiKV's immediate apply.
// Errors: ErrStoreNotFound; ErrInvalidArgument for a negative d.
func (s *Sim) SetApplyDelay(storeID uint64, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%w: apply delay %s", ErrInvalidArgument, d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.storeLocked(storeID)
	if err != nil {
		return err
	}
	st.applyDelay = d
	return nil
}

// SetRegionSilent makes a region's leader stop (silent=true) or resume
// its region heartbeats while every store keeps heartbeating, as when a
// TiKV peer hangs without giving up leadership. PD keeps the region's last
// reported state (leader included) and cannot run an operator on it; after
// a PD restart PD knows the region only from its storage, without a leader
// (leader.store_id 0 in GET /pd/api/v1/region/id/{id}) until a heartbeat
// comes. Resuming sends a heartbeat at once. Errors: ErrRegionNotFound.
func (s *Sim) SetRegionSilent(regionID uint64, silent bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.regionLocked(regionID)
	if err != nil {
		return err
	}
	r.silent = silent
	if !silent {
		s.markDirtyLocked(r)
		s.kickPump()
	}
	return nil
}

// SetIgnoreCommands makes a store drop (ignore=true) every command PD
// sends for a region it leads (transfer leader, conf change, split,
// merge): the step is never applied, so PD's operator stays RUNNING until
// PD times it out (its status becomes TIMEOUT in
// GET /pd/api/v1/operators/records). The store and its regions keep
// heartbeating. false applies PD's commands again. Errors:
// ErrStoreNotFound.
func (s *Sim) SetIgnoreCommands(storeID uint64, ignore bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.storeLocked(storeID)
	if err != nil {
		return err
	}
	st.ignoreCommands = ignore
	return nil
}

// AddStore registers a new TiKV store with PD (an ID from PD's allocator,
// PutStore with address, or the next free fake address when address is
// ""; labels as given) and starts its store heartbeats and region
// heartbeat stream; it holds no region until PD schedules one onto it. PD
// refuses an address used by another store that is neither Tombstone nor
// physically destroyed (a *PDError); after
// DELETE /pd/api/v1/store/{id}?force=true the old record may stay Offline
// beside the new one with the same address. It returns the new store's
// id. Errors: ErrClosed, ErrInvalidArgument for a bad address, *PDError,
// transport errors.
func (s *Sim) AddStore(ctx context.Context, address string, labels map[string]string) (uint64, error) {
	if strings.ContainsFunc(address, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' }) || len(address) > 255 {
		return 0, fmt.Errorf("%w: address %q", ErrInvalidArgument, address)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, ErrClosed
	}
	n := len(s.storeOrder)
	s.mu.Unlock()
	ids, err := s.pd.allocIDs(ctx, 1)
	if err != nil {
		return 0, fmt.Errorf("allocate store id: %w", err)
	}
	id := ids[0]
	if address == "" {
		address = fmt.Sprintf("127.0.0.1:%d", 20160+n)
	}
	now := time.Now()
	meta := &metapb.Store{
		Id:             id,
		Address:        address,
		StatusAddress:  fmt.Sprintf("127.0.0.1:%d", 40160+n),
		Version:        s.cfg.Version,
		GitHash:        "tikvsim",
		StartTimestamp: now.Unix(),
		DeployPath:     "/tikvsim",
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		meta.Labels = append(meta.Labels, &metapb.StoreLabel{Key: k, Value: labels[k]})
	}
	st := &store{meta: meta, startTime: now, signal: make(chan struct{}, 1)}
	if s.cfg.StatusServer {
		if err := s.startStatusServer(st, now); err != nil {
			return 0, err
		}
	}
	if err := s.pd.putStore(ctx, meta); err != nil {
		if st.status != nil {
			_ = st.status.Close()
		}
		return 0, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if st.status != nil {
			_ = st.status.Close()
		}
		return 0, ErrClosed
	}
	s.stores[id] = st
	s.storeOrder = append(s.storeOrder, id)
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.runStream(s.loopCtx, st)
	}()
	s.kickStoreHeartbeats()
	s.log.Info("store added", "store", id, "address", address)
	return id, nil
}
