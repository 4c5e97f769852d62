package pd

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// storeStateNames are the state filters GET /stores/check accepts (PD v8.1
// server/api/store.go:658-700, matched case-insensitively on state_name).
var storeStateNames = map[string]bool{
	"up": true, "offline": true, "tombstone": true, "disconnected": true, "down": true,
}

// Stores returns stores from PD. Without states it calls GET
// /pd/api/v1/stores, which lists every store except Tombstone ones (Up,
// Disconnected, Down and Offline). With states (Up, Offline, Tombstone,
// Disconnected, Down; any case) it calls GET /pd/api/v1/stores/check?state=..
// (PD >= 5.x), which filters on state_name. An unknown state name is an
// error and sends nothing.
func (c *Client) Stores(ctx context.Context, states ...string) ([]StoreInfo, error) {
	route, path := routeStores, routeStores
	if len(states) > 0 {
		q := url.Values{}
		for _, s := range states {
			l := strings.ToLower(strings.TrimSpace(s))
			if !storeStateNames[l] {
				return nil, fmt.Errorf("pd: unknown store state %q (want Up, Offline, Tombstone, Disconnected or Down)", s)
			}
			q.Add("state", l)
		}
		route, path = routeStoresCheck, routeStoresCheck+"?"+q.Encode()
	}
	var out StoresInfo
	if err := c.get(ctx, route, path, &out); err != nil {
		return nil, err
	}
	return out.Stores, nil
}

// Store returns one store (GET /pd/api/v1/store/{id}). An unknown id is an
// error wrapping ErrStoreNotFound (PD answers 404).
func (c *Client) Store(ctx context.Context, id uint64) (*StoreInfo, error) {
	var out StoreInfo
	if err := c.get(ctx, routeStoreByID, storePath(id), &out); err != nil {
		return nil, err
	}
	if out.Store.ID == 0 {
		return nil, fmt.Errorf("%w: store %d: PD answered without a store id", ErrStoreNotFound, id)
	}
	return &out, nil
}

// StoreProgress returns the removal (Offline store) or preparing progress of
// a store (GET /pd/api/v1/stores/progress?id=N). It returns an error
// wrapping ErrProgressNotFound when PD tracks none (404).
func (c *Client) StoreProgress(ctx context.Context, id uint64) (*StoreProgress, error) {
	var out StoreProgress
	path := routeStoresProgress + "?id=" + strconv.FormatUint(id, 10)
	if err := c.get(ctx, routeStoresProgress, path, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteStore asks PD to decommission a store: DELETE /pd/api/v1/store/{id}
// with no query at all. PD sets it Offline (node_state Removing), moves its
// replicas away and makes it Tombstone by itself once it holds no region;
// from then on the store id can never come back. It refuses (400) when the
// remaining Up stores would be fewer than max-replicas.
//
// This client never sends the force parameter in any form: its mere
// presence marks the store physically destroyed, which is irreversible and
// skips PD's replica check. Errors wrap ErrStoreNotFound (404) or
// ErrStoreRemoved (410, already Tombstone).
func (c *Client) DeleteStore(ctx context.Context, id uint64) error {
	if id == 0 {
		return fmt.Errorf("pd: delete store: %w: id 0", ErrStoreNotFound)
	}
	_, err := c.do(ctx, http.MethodDelete, routeStoreByID, storePath(id), nil, nil)
	return err
}

// SetStoreState calls POST /pd/api/v1/store/{id}/state?state=S. State "Up"
// cancels an in-progress removal of an Offline store (pd-ctl store
// cancel-delete); "Offline" is exactly DeleteStore. Any other state is an
// error and sends nothing (PD refuses Tombstone).
func (c *Client) SetStoreState(ctx context.Context, id uint64, state string) error {
	var s string
	switch strings.ToLower(state) {
	case "up":
		s = StateUp
	case "offline":
		s = StateOffline
	default:
		return fmt.Errorf("pd: set store state %q: only Up and Offline can be set", state)
	}
	path := storePath(id) + "/state?state=" + s
	_, err := c.do(ctx, http.MethodPost, routeStoreState, path, nil, nil)
	return err
}

func storePath(id uint64) string { return routeStore + "/" + strconv.FormatUint(id, 10) }

// StoresWithTime is Stores (GET /pd/api/v1/stores, every store except
// Tombstone ones) plus PD's clock at the time of the answer, read from its
// HTTP Date header (one-second resolution), or the zero time when PD sent
// no valid Date header. Store heartbeat ages should be computed against
// this time, not the local clock.
func (c *Client) StoresWithTime(ctx context.Context) ([]StoreInfo, time.Time, error) {
	var out StoresInfo
	resp, err := c.do(ctx, http.MethodGet, routeStores, routeStores, nil, &out)
	if err != nil {
		return nil, time.Time{}, err
	}
	t, err := dateHeader(resp.header, routeStores)
	if err != nil {
		t = time.Time{}
	}
	return out.Stores, t, nil
}
