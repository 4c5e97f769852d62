package pd

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
)

// RegionChecks are the names GET /pd/api/v1/regions/check/{name} accepts
// (PD v8.1 server/api/router.go:266-274). Each answers the regions PD's
// statistics currently flag, with no limit.
var RegionChecks = []string{
	"miss-peer", "extra-peer", "pending-peer", "down-peer", "learner-peer",
	"empty-region", "offline-peer", "oversized-region", "undersized-region",
}

// TopRegionOrders are the orders TopRegions accepts: the suffixes of GET
// /pd/api/v1/regions/{by}?limit=N (PD v8.1; writequery and readquery are PD
// >= 8.5).
var TopRegionOrders = []string{
	"writeflow", "readflow", "size", "keys", "confver", "version", "cpu", "writequery", "readquery",
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Region returns one region (GET /pd/api/v1/region/id/{id}). PD answers
// an unknown id with 200 and "id": 0; that and id 0 are errors wrapping
// ErrRegionNotFound.
func (c *Client) Region(ctx context.Context, id uint64) (*Region, error) {
	if id == 0 {
		return nil, fmt.Errorf("%w: region id 0", ErrRegionNotFound)
	}
	var out Region
	path := apiPrefix + "/region/id/" + strconv.FormatUint(id, 10)
	if err := c.get(ctx, routeRegionByID, path, &out); err != nil {
		return nil, err
	}
	if out.ID == 0 {
		return nil, fmt.Errorf("%w: region %d", ErrRegionNotFound, id)
	}
	if out.ID != id {
		return nil, &DecodeError{Method: "GET", Path: path, Err: fmt.Errorf("asked region %d, PD answered region %d", id, out.ID)}
	}
	return &out, nil
}

// RegionsByStore returns every region with a peer on the store (GET
// /pd/api/v1/regions/store/{id}). Its size grows with the store's region
// count: use it for one store, not in a monitor loop.
func (c *Client) RegionsByStore(ctx context.Context, id uint64) ([]Region, error) {
	var out RegionsInfo
	path := apiPrefix + "/regions/store/" + strconv.FormatUint(id, 10)
	if err := c.get(ctx, routeRegionsByStore, path, &out); err != nil {
		return nil, err
	}
	return out.Regions, nil
}

// CheckRegions returns the regions one of PD's region checks flags (GET
// /pd/api/v1/regions/check/{name}); name is one of RegionChecks. An
// unknown name is an error and sends nothing.
func (c *Client) CheckRegions(ctx context.Context, name string) ([]Region, error) {
	if !contains(RegionChecks, name) {
		return nil, fmt.Errorf("pd: unknown region check %q (want one of %v)", name, RegionChecks)
	}
	var out RegionsInfo
	if err := c.get(ctx, routeRegionsCheck, apiPrefix+"/regions/check/"+name, &out); err != nil {
		return nil, err
	}
	return out.Regions, nil
}

// TopRegions returns the limit regions with the highest value of by (one of
// TopRegionOrders: writeflow and readflow in bytes/s, size in MiB, keys,
// confver, version, cpu) from GET /pd/api/v1/regions/{by}?limit=N. limit
// must be 1..10240 (PD's bound).
func (c *Client) TopRegions(ctx context.Context, by string, limit int) ([]Region, error) {
	if !contains(TopRegionOrders, by) {
		return nil, fmt.Errorf("pd: unknown top-region order %q (want one of %v)", by, TopRegionOrders)
	}
	if limit < 1 || limit > 10240 {
		return nil, fmt.Errorf("pd: top-region limit %d out of range 1..10240", limit)
	}
	var out RegionsInfo
	path := apiPrefix + "/regions/" + by + "?limit=" + strconv.Itoa(limit)
	if err := c.get(ctx, routeRegionsTop, path, &out); err != nil {
		return nil, err
	}
	return out.Regions, nil
}

// HotWrite returns PD's write hotspots (GET /pd/api/v1/hotspot/regions/write).
func (c *Client) HotWrite(ctx context.Context) (*HotRegions, error) {
	var out HotRegions
	if err := c.get(ctx, routeHotWrite, routeHotWrite, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// HotRead returns PD's read hotspots (GET /pd/api/v1/hotspot/regions/read).
func (c *Client) HotRead(ctx context.Context) (*HotRegions, error) {
	var out HotRegions
	if err := c.get(ctx, routeHotRead, routeHotRead, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// HotStores returns per-store read/write rates (GET
// /pd/api/v1/hotspot/stores).
func (c *Client) HotStores(ctx context.Context) (*HotStores, error) {
	var out HotStores
	if err := c.get(ctx, routeHotStores, routeHotStores, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ScanRegions returns at most limit (1..10240) regions overlapping the key
// range [startKeyHex, endKeyHex) in key order (GET
// /pd/api/v1/regions/key?key=..&end_key=..&limit=N). Keys are uppercase or
// lowercase hex as PD renders them in start_key/end_key; "" means
// unbounded. A key that is not hex is an error and sends nothing.
func (c *Client) ScanRegions(ctx context.Context, startKeyHex, endKeyHex string, limit int) ([]Region, error) {
	if limit < 1 || limit > 10240 {
		return nil, fmt.Errorf("pd: scan limit %d out of range 1..10240", limit)
	}
	start, err := hex.DecodeString(startKeyHex)
	if err != nil {
		return nil, fmt.Errorf("pd: scan regions: start key %q is not hex: %w", startKeyHex, err)
	}
	end, err := hex.DecodeString(endKeyHex)
	if err != nil {
		return nil, fmt.Errorf("pd: scan regions: end key %q is not hex: %w", endKeyHex, err)
	}
	q := url.Values{}
	q.Set("key", string(start))
	q.Set("end_key", string(end))
	q.Set("limit", strconv.Itoa(limit))
	var out RegionsInfo
	if err := c.get(ctx, routeRegionsScan, routeRegionsScan+"?"+q.Encode(), &out); err != nil {
		return nil, err
	}
	return out.Regions, nil
}
