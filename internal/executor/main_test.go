package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// helperEnv selects TestHelperProcess in a re-executed test binary; no
// cluster is started then (the parent's is used).
const helperEnv = "OPERATOR_EXECUTOR_HELPER"

// shared is one PD + simulator for the package. Tests run one after
// another and each uses its own region(s), read fresh, so they do not
// disturb each other; balance-leader and balance-region are off so leaders
// only move when a test moves them.
var (
	shared *testcluster.Cluster
	proxy  *pdProxy
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	c, err := testcluster.New(ctx, testcluster.Options{
		Stores: 3, Regions: 16, StoreHeartbeat: time.Second, PauseBalanceLeader: true,
		DisableSchedulers: []string{"balance-region", "hot-region", "evict-slow-store"},
	})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "executor TestMain: start cluster:", err)
		os.Exit(1)
	}
	shared = c
	proxy, err = newPDProxy(c.PDURL)
	if err != nil {
		c.Close()
		fmt.Fprintln(os.Stderr, "executor TestMain: proxy:", err)
		os.Exit(1)
	}
	code := m.Run()
	proxy.Close()
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "executor TestMain: close cluster:", err)
		code = 1
	}
	os.Exit(code)
}

// pdProxy is a loopback reverse proxy in front of PD that timestamps every
// mutating request (any method but GET) as it arrives, so tests can count
// what reached PD (also from a killed child process) and measure latency.
type pdProxy struct {
	srv *httptest.Server
	mu  sync.Mutex
	log []proxied
	// notify, when set, receives every mutating request (non-blocking).
	notify chan proxied
}

type proxied struct {
	Method, Path string
	At           time.Time
}

func newPDProxy(target string) (*pdProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &pdProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			req := proxied{Method: r.Method, Path: r.URL.Path, At: time.Now()}
			p.mu.Lock()
			p.log = append(p.log, req)
			ch := p.notify
			p.mu.Unlock()
			if ch != nil {
				select {
				case ch <- req:
				default:
				}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	return p, nil
}

func (p *pdProxy) URL() string { return p.srv.URL }
func (p *pdProxy) Close()      { p.srv.Close() }

// mark returns a position; since(mark) lists the mutating requests after it.
func (p *pdProxy) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.log)
}

func (p *pdProxy) since(mark int) []proxied {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]proxied(nil), p.log[mark:]...)
}

// subscribe sets the notification channel for the test's duration.
func (p *pdProxy) subscribe(t *testing.T) <-chan proxied {
	ch := make(chan proxied, 64)
	p.mu.Lock()
	p.notify = ch
	p.mu.Unlock()
	t.Cleanup(func() {
		p.mu.Lock()
		p.notify = nil
		p.mu.Unlock()
	})
	return ch
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// harness is one executor's world: a fresh SQLite file, a PD client through
// the proxy, the real TiKV catalog.
type harness struct {
	t    *testing.T
	path string
	st   *store.Store
	pdc  *pd.Client
	cat  *action.Catalog
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "operator.db")
	st := openStore(t, path, true)
	pdc, err := pd.New([]string{proxy.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, path: path, st: st, pdc: pdc,
		cat: tikv.NewCatalog(pdc, tikv.WithPollInterval(50*time.Millisecond), tikv.WithVerifyTimeout(30*time.Second))}
}

// testClusterID is the PD cluster id test databases are bound to.
const testClusterID = "7001"

func openStore(t *testing.T, path string, create bool) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), path, store.Options{Create: create})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// The executor claims only for the cluster the database is bound to.
	if err := st.BindCluster(context.Background(), testClusterID, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	return st
}

func (h *harness) capture() CaptureFunc {
	return func(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
		return tikv.CaptureState(ctx, h.pdc, params)
	}
}

// executor returns an executor on the harness with test defaults; mod
// adjusts the options.
func (h *harness) executor(mod func(*Options)) *Executor {
	o := Options{Store: h.st, Catalog: h.cat, Capture: h.capture(), Logger: testLogger(h.t), Name: "test-executor"}
	if mod != nil {
		mod(&o)
	}
	return New(o)
}

var subjectSeq struct {
	sync.Mutex
	n int
}

// propose opens a ticket and stores a diagnosis proposing actionType with
// params, by "rules", expiring at expires (zero: in an hour).
func propose(t *testing.T, st *store.Store, actionType string, params any, expires time.Time) action.Proposal {
	t.Helper()
	ctx := context.Background()
	subjectSeq.Lock()
	subjectSeq.n++
	subject := fmt.Sprintf("region:test-%d", subjectSeq.n)
	subjectSeq.Unlock()
	now := time.Now()
	tk, _, err := st.Observe(ctx, ticket.Observation{Invariant: "leader_skew", Subject: subject, Severity: ticket.Warning,
		Summary: "test", Evidence: json.RawMessage(`{}`)}, now)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	if expires.IsZero() {
		expires = now.Add(time.Hour)
	}
	id, err := st.SaveDiagnosis(ctx, tk.ID, store.DiagnosisInput{Markdown: "test diagnosis", Backend: "rules",
		Proposal: &action.Proposal{ActionType: actionType, Params: raw, Rationale: "test", Urgency: action.Soon, ExpiresAt: expires}}, now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.Proposal(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// regionPick is a region with its leader store and a voter store to move
// the leader to.
type regionPick struct {
	ID       uint64
	Leader   uint64
	Follower uint64
}

var regionSeq struct {
	sync.Mutex
	next int
}

// pickRegion returns a different region on each call (cycling), read
// fresh from PD, with a follower voter on an Up store.
func pickRegion(t *testing.T) regionPick {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	ids := shared.Sim.RegionIDs()
	for range len(ids) {
		regionSeq.Lock()
		id := ids[regionSeq.next%len(ids)]
		regionSeq.next++
		regionSeq.Unlock()
		var r pd.Region
		if err := shared.GetJSON(ctx, fmt.Sprintf("/region/id/%d", id), &r); err != nil || r.ID == 0 || !r.HasLeader() {
			continue
		}
		for _, p := range r.Peers {
			if p.StoreID != r.Leader.StoreID && p.IsVoter() && storeUp(ctx, t, p.StoreID) {
				return regionPick{ID: r.ID, Leader: r.Leader.StoreID, Follower: p.StoreID}
			}
		}
	}
	t.Fatal("no region with a leader and an Up follower")
	return regionPick{}
}

func storeUp(ctx context.Context, t *testing.T, id uint64) bool {
	var s pd.StoreInfo
	if err := shared.GetJSON(ctx, fmt.Sprintf("/store/%d", id), &s); err != nil {
		return false
	}
	return s.Store.StateName == pd.StateUp
}

// leaderOf reads the region's leader store straight from PD (GET
// /pd/api/v1/region/id/{id}).
func leaderOf(t *testing.T, id uint64) uint64 {
	t.Helper()
	var r pd.Region
	if err := shared.GetJSON(ctxT(t, 10*time.Second), fmt.Sprintf("/region/id/%d", id), &r); err != nil {
		t.Fatalf("GET /region/id/%d: %v", id, err)
	}
	return r.Leader.StoreID
}

func transferParams(r regionPick) map[string]uint64 {
	return map[string]uint64{"region_id": r.ID, "to_store_id": r.Follower}
}

// run starts e.Run and returns a stop function that cancels it and waits
// for Run to return (also registered as cleanup).
func run(t *testing.T, e *Executor) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(2 * time.Minute):
				t.Error("Run did not return within 2 minutes of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitStatus polls until proposal id is in one of want.
func waitStatus(t *testing.T, st *store.Store, id int64, want ...action.Status) action.Proposal {
	t.Helper()
	ctx := ctxT(t, 90*time.Second)
	var last action.Proposal
	err := testcluster.WaitFor(ctx, func() (bool, error) {
		p, err := st.Proposal(ctx, id)
		if err != nil {
			return false, err
		}
		last = p
		for _, s := range want {
			if p.Status == s {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("proposal %d never reached %v (last %s, result %q): %v", id, want, last.Status, last.Result, err)
	}
	return last
}

func records(t *testing.T, st *store.Store, proposalID int64) []action.Record {
	t.Helper()
	recs, err := st.Records(context.Background(), store.RecordFilter{ProposalID: proposalID})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// approvalRecord checks that rec is the audit record of an approval of
// proposal id by by (written by store.Approve with the status change).
func approvalRecord(t *testing.T, rec action.Record, id int64, by string) {
	t.Helper()
	if rec.Event != action.EventApproval || rec.ProposalID != id || rec.ApprovedBy != by || !rec.Success ||
		rec.DryRun || rec.IsExecution() || rec.Message != "approved by "+by || len(rec.Requests) != 0 {
		t.Errorf("want the approval of action %d by %s, got record %+v", id, by, rec)
	}
}

func verifyOK(t *testing.T, st *store.Store) store.VerifyReport {
	t.Helper()
	rep, err := st.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("audit chain broken: %+v", rep.Broken)
	}
	return rep
}

// operatorPosts filters the proxied requests to operator creations.
func operatorPosts(reqs []proxied) []proxied {
	var out []proxied
	for _, r := range reqs {
		if r.Method == http.MethodPost && r.Path == "/pd/api/v1/operators" {
			out = append(out, r)
		}
	}
	return out
}

// stateRegionLeader decodes the leader store of the region in a captured
// state (tikv.State).
func stateRegionLeader(t *testing.T, raw json.RawMessage) uint64 {
	t.Helper()
	var st struct {
		Region *struct {
			LeaderStoreID uint64 `json:"leader_store_id"`
		} `json:"region"`
	}
	if err := json.Unmarshal(raw, &st); err != nil || st.Region == nil {
		t.Fatalf("state %s has no region: %v", raw, err)
	}
	return st.Region.LeaderStoreID
}

// setProposer rewrites a proposal's proposed_by, as a human-proposed
// action would have it.
func setProposer(t *testing.T, st *store.Store, id int64, by string) {
	t.Helper()
	if err := st.SetProposedByForTest(context.Background(), id, by); err != nil {
		t.Fatal(err)
	}
}
