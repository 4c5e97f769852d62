package tikvsim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pingcap/kvproto/pkg/metapb"
	"github.com/pingcap/kvproto/pkg/pdpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// rpcTimeout bounds every unary call to PD.
const rpcTimeout = 5 * time.Second

// pdClient wraps the kvproto PD gRPC client with the cluster ID header that
// PD insists on (a mismatch is a FailedPrecondition error).
type pdClient struct {
	conn      *grpc.ClientConn
	pd        pdpb.PDClient
	clusterID uint64
}

// PDError is an error PD returned in a response header (pdpb.Error), as
// opposed to a transport error.
type PDError struct {
	// Op is the RPC, e.g. "StoreHeartbeat".
	Op string
	// Type is PD's error type, e.g. pdpb.ErrorType_STORE_TOMBSTONE.
	Type pdpb.ErrorType
	// Message is PD's message.
	Message string
}

func (e *PDError) Error() string {
	return fmt.Sprintf("pd %s: %s: %s", e.Op, e.Type, e.Message)
}

// grpcTarget turns "http://127.0.0.1:2379" or "127.0.0.1:2379" into a gRPC
// target. PD serves gRPC on its client URL.
func grpcTarget(pdURL string) (string, error) {
	s := strings.TrimSpace(pdURL)
	s = strings.TrimPrefix(s, "http://")
	s = strings.TrimPrefix(s, "https://")
	s = strings.TrimSuffix(s, "/")
	if s == "" || strings.ContainsAny(s, "/ ") {
		return "", fmt.Errorf("%w: PD address %q, want http://host:port", ErrInvalidConfig, pdURL)
	}
	return "passthrough:///" + s, nil
}

func dialPD(pdURL string) (*pdClient, error) {
	target, err := grpcTarget(pdURL)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
	)
	if err != nil {
		return nil, fmt.Errorf("dial PD %s: %w", pdURL, err)
	}
	return &pdClient{conn: conn, pd: pdpb.NewPDClient(conn)}, nil
}

func (c *pdClient) close() error { return c.conn.Close() }

func (c *pdClient) header() *pdpb.RequestHeader {
	return &pdpb.RequestHeader{ClusterId: c.clusterID}
}

func checkHeader(op string, h *pdpb.ResponseHeader) error {
	if e := h.GetError(); e != nil && e.GetType() != pdpb.ErrorType_OK {
		return &PDError{Op: op, Type: e.GetType(), Message: e.GetMessage()}
	}
	return nil
}

// fetchClusterID asks PD for its members and remembers the cluster ID.
func (c *pdClient) fetchClusterID(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := c.pd.GetMembers(ctx, &pdpb.GetMembersRequest{})
	if err != nil {
		return 0, fmt.Errorf("pd GetMembers: %w", err)
	}
	if err := checkHeader("GetMembers", resp.GetHeader()); err != nil {
		return 0, err
	}
	id := resp.GetHeader().GetClusterId()
	if id == 0 {
		return 0, errors.New("pd GetMembers: cluster id 0 (PD not ready)")
	}
	return id, nil
}

func (c *pdClient) isBootstrapped(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := c.pd.IsBootstrapped(ctx, &pdpb.IsBootstrappedRequest{Header: c.header()})
	if err != nil {
		return false, fmt.Errorf("pd IsBootstrapped: %w", err)
	}
	if err := checkHeader("IsBootstrapped", resp.GetHeader()); err != nil {
		return false, err
	}
	return resp.GetBootstrapped(), nil
}

func (c *pdClient) allocID(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := c.pd.AllocID(ctx, &pdpb.AllocIDRequest{Header: c.header()})
	if err != nil {
		return 0, fmt.Errorf("pd AllocID: %w", err)
	}
	if err := checkHeader("AllocID", resp.GetHeader()); err != nil {
		return 0, err
	}
	return resp.GetId(), nil
}

// allocIDs allocates n IDs from PD with parallel calls (PD has no batch
// AllocID in this kvproto version; 40k serial calls take ~8 s).
func (c *pdClient) allocIDs(ctx context.Context, n int) ([]uint64, error) {
	ids := make([]uint64, n)
	workers := 32
	if n < workers {
		workers = n
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     int
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= n || firstErr != nil {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				id, err := c.allocID(ctx)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return ids, nil
}

func (c *pdClient) bootstrap(ctx context.Context, store *metapb.Store, region *metapb.Region) error {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := c.pd.Bootstrap(ctx, &pdpb.BootstrapRequest{Header: c.header(), Store: store, Region: region})
	if err != nil {
		return fmt.Errorf("pd Bootstrap: %w", err)
	}
	return checkHeader("Bootstrap", resp.GetHeader())
}

func (c *pdClient) putStore(ctx context.Context, store *metapb.Store) error {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := c.pd.PutStore(ctx, &pdpb.PutStoreRequest{Header: c.header(), Store: store})
	if err != nil {
		return fmt.Errorf("pd PutStore %d: %w", store.GetId(), err)
	}
	return checkHeader("PutStore", resp.GetHeader())
}

func (c *pdClient) storeHeartbeat(ctx context.Context, stats *pdpb.StoreStats) error {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := c.pd.StoreHeartbeat(ctx, &pdpb.StoreHeartbeatRequest{Header: c.header(), Stats: stats})
	if err != nil {
		return fmt.Errorf("pd StoreHeartbeat %d: %w", stats.GetStoreId(), err)
	}
	return checkHeader("StoreHeartbeat", resp.GetHeader())
}

func (c *pdClient) askBatchSplit(ctx context.Context, region *metapb.Region, count int) ([]*pdpb.SplitID, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := c.pd.AskBatchSplit(ctx, &pdpb.AskBatchSplitRequest{Header: c.header(), Region: region, SplitCount: uint32(count)})
	if err != nil {
		return nil, fmt.Errorf("pd AskBatchSplit region %d: %w", region.GetId(), err)
	}
	if err := checkHeader("AskBatchSplit", resp.GetHeader()); err != nil {
		return nil, err
	}
	return resp.GetIds(), nil
}

func (c *pdClient) reportBatchSplit(ctx context.Context, regions []*metapb.Region) error {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := c.pd.ReportBatchSplit(ctx, &pdpb.ReportBatchSplitRequest{Header: c.header(), Regions: regions})
	if err != nil {
		return fmt.Errorf("pd ReportBatchSplit: %w", err)
	}
	return checkHeader("ReportBatchSplit", resp.GetHeader())
}
