package pd

import (
	"context"
	"errors"
	"strconv"
)

// routeCluster is GET /pd/api/v1/cluster (PD's metapb.Cluster: id and
// max_peer_count), in every PD version since 2.x.
const routeCluster = "/pd/api/v1/cluster"

// ClusterID returns PD's cluster id (GET /pd/api/v1/cluster, field "id",
// a uint64 fixed when the cluster was bootstrapped) as a decimal string.
// Errors: ErrUnreachable, *APIError, or an answer without an id (not PD,
// or a cluster not bootstrapped yet).
func (c *Client) ClusterID(ctx context.Context) (string, error) {
	var out struct {
		ID uint64 `json:"id"`
	}
	if err := c.get(ctx, routeCluster, routeCluster, &out); err != nil {
		return "", err
	}
	if out.ID == 0 {
		return "", errors.New("pd: GET /pd/api/v1/cluster answered no cluster id (not bootstrapped, or not PD)")
	}
	return strconv.FormatUint(out.ID, 10), nil
}
