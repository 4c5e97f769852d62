package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auditkey"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
)

// haConfigEnv names the config file of a replica the HA test starts as a
// child process (TestHAReplicaProcess).
const haConfigEnv = "OPERATOR_TEST_HA_CONFIG"

// haTTLEnv overrides the test's lease TTL (default 5 s; the failover
// figure of docs/ha.md was measured with 10 s, the default).
const haTTLEnv = "OPERATOR_TEST_HA_TTL"

// TestHAReplicaProcess is not a test: it is `operator run` for the HA test,
// run in a child process of the test binary (config from $OPERATOR_TEST_HA_CONFIG),
// so that the test can kill -9, SIGSTOP and SIGCONT a replica.
func TestHAReplicaProcess(t *testing.T) {
	path := os.Getenv(haConfigEnv)
	if path == "" {
		t.Skip("helper process of TestHAFailover")
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	d, err := New(Options{Config: cfg, Version: "ha-test", Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// haReplica is one `operator run` child process.
type haReplica struct {
	name, listen, socket, log string
	cmd                       *exec.Cmd
	exited                    chan struct{}
}

func (r *haReplica) health() (Health, error) {
	var h Health
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + r.listen + "/healthz")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

func (r *haReplica) leading() (bool, int64) {
	h, err := r.health()
	return err == nil && h.Role == "leader", h.Term
}

func (r *haReplica) logText(t *testing.T) string {
	b, err := os.ReadFile(r.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// api calls the replica's API over its Unix socket (as this OS user: root
// or the daemon's user, an admin) or, with token, over TCP, and fails the
// test on an error or a status other than 2xx.
func (r *haReplica) api(t *testing.T, method, path, token string, body any, out any) {
	t.Helper()
	if err := r.tryAPI(method, path, token, body, out); err != nil {
		t.Fatal(err)
	}
}

// tryAPI is api returning the error (a failed request, a status other
// than 2xx, an unreadable answer).
func (r *haReplica) tryAPI(method, path, token string, body any, out any) error {
	b, _ := json.Marshal(body)
	c := http.Client{Timeout: 30 * time.Second}
	base := "http://" + r.listen
	if token == "" {
		base = "http://unix"
		c.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", r.socket)
		}}
	}
	req, err := http.NewRequest(method, base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s on %s: %w", method, path, r.name, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s on %s: %d %s", method, path, r.name, resp.StatusCode, bytes.TrimSpace(rb))
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			return fmt.Errorf("%s %s: %v: %s", method, path, err, rb)
		}
	}
	return nil
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestHAFailover runs three `operator run` replicas (child processes) with
// [ha] enabled on one real PD (its embedded etcd) and the simulator, on a
// shared database: subtest "postgres" on a real PostgreSQL database
// (internal/pgtest; the replicas connect as a runtime role without UPDATE
// and DELETE on the audit table, store.PostgresRuntimeGrants, and share
// [audit] key-dir), subtest "sqlite" on one SQLite file (steps 1 and 2
// only: step 3's fencing is the same store code, covered on both
// databases by internal/store's conformance suite):
//
//  1. exactly one leads;
//  2. the leader is killed (SIGKILL, by the executor's crash hook right
//     before it sends an approved transfer_leader): a follower leads within
//     the lease TTL, recovers the action as interrupted (by term: claimed
//     under an older term) and never re-runs it (the region's leader did
//     not move in PD); the approval request made before the kill survives
//     and is approved afterwards through another replica;
//  3. the new leader is paused (SIGSTOP) while that approved action's PD
//     operator runs (slow store): the third replica leads and recovers it;
//     on SIGCONT the paused leader's finish is refused (store.ErrStaleTerm)
//     and nothing carries its term after the newer leader's; PD carried out
//     the transfer once.
//
// No ticket is duplicated, the ticket was diagnosed once, and the audit
// trail verifies against every replica's checkpoint file.
func TestHAFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PD and three daemons")
	}
	t.Run("postgres", func(t *testing.T) { testHAFailover(t, "postgres", true) })
	t.Run("sqlite", func(t *testing.T) { testHAFailover(t, "sqlite", false) })
}

// newReplica writes the configuration of replica i of the HA tests in dir
// (PD at pdURL, the database's TOML, an approver token whose secret hashes
// to sum, [ha] with lease ttl) and returns the replica and the file.
func newReplica(t *testing.T, i int, dir, pdURL, dbTOML string, sum [sha256.Size]byte, ttl time.Duration) (*haReplica, string) {
	t.Helper()
	r := &haReplica{name: fmt.Sprintf("r%d", i), listen: freeAddr(t),
		socket: filepath.Join(dir, fmt.Sprintf("r%d.sock", i)), log: filepath.Join(dir, fmt.Sprintf("r%d.log", i))}
	path := filepath.Join(dir, r.name+".toml")
	toml := fmt.Sprintf(`[pd]
endpoints = [%q]
%s
[monitor]
interval = "1s"
quiet-period = "2s"
[server]
listen = %q
socket = %q
[invariants]
default-for = "0s"
leader-imbalance-min-diff = 4
[[auth.tokens]]
name = "tara"
role = "approver"
sha256 = %q
[ha]
enabled = true
lease-ttl = %q
`, pdURL, dbTOML, r.listen, r.socket, hex.EncodeToString(sum[:]), ttl.String())
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return r, path
}

// testHAFailover is TestHAFailover on one database kind ("sqlite" or
// "postgres"); full adds step 3 (SIGSTOP).
func testHAFailover(t *testing.T, kind string, full bool) {
	ttl := 5 * time.Second
	if v := os.Getenv(haTTLEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		ttl = d
	}
	c := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 1, SkewLeaders: true, PauseBalanceLeader: true})
	ctx := context.Background()
	dir := t.TempDir()
	db := haDatabase(t, kind, dir)
	secret := "ha-test-approver-secret"
	sum := sha256.Sum256([]byte(secret))

	start := func(i int, env ...string) *haReplica {
		r, cfgPath := newReplica(t, i, dir, c.PDURL, db.toml, sum, ttl)
		r.exited = make(chan struct{})
		logf, err := os.Create(r.log)
		if err != nil {
			t.Fatal(err)
		}
		r.cmd = exec.Command(os.Args[0], "-test.run=^TestHAReplicaProcess$")
		r.cmd.Env = append(os.Environ(), haConfigEnv+"="+cfgPath)
		r.cmd.Env = append(r.cmd.Env, env...)
		r.cmd.Stdout, r.cmd.Stderr = logf, logf
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = r.cmd.Wait(); logf.Close(); close(r.exited) }()
		t.Cleanup(func() {
			_ = r.cmd.Process.Signal(syscall.SIGCONT)
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-r.exited:
			case <-time.After(20 * time.Second):
				_ = r.cmd.Process.Kill()
				<-r.exited
			}
			if t.Failed() {
				t.Logf("%s log tail:\n%s", r.name, tailLines(r.logText(t), 30))
			}
		})
		return r
	}
	leaders := func(rs ...*haReplica) []*haReplica {
		var out []*haReplica
		for _, r := range rs {
			if ok, _ := r.leading(); ok {
				out = append(out, r)
			}
		}
		return out
	}

	// r0 starts first (it creates the audit key) and kills itself right
	// before sending an action to PD.
	r0 := start(0, executor.CrashEnv+"="+string(executor.CrashBeforeRequest))
	waitFor(t, "r0 to lead", 60*time.Second, func() bool { ok, _ := r0.leading(); return ok })
	r1, r2 := start(1), start(2)
	all := []*haReplica{r0, r1, r2}
	waitFor(t, "r1 and r2 to serve as followers", 30*time.Second, func() bool {
		h1, err1 := r1.health()
		h2, err2 := r2.health()
		return err1 == nil && err2 == nil && h1.Role == "follower" && h2.Role == "follower"
	})
	for i := 0; i < 10; i++ {
		if ls := leaders(all...); len(ls) != 1 || ls[0] != r0 {
			t.Fatalf("leaders = %v, want exactly r0", names(ls))
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, term0 := r0.leading()

	st, err := store.Open(ctx, db.target, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var p1 action.Proposal
	waitFor(t, "the rules' transfer_leader proposal", 60*time.Second, func() bool {
		ps, err := st.Proposals(ctx, store.ProposalFilter{Statuses: []action.Status{action.Proposed}})
		if err != nil || len(ps) == 0 {
			return false
		}
		p1 = ps[0]
		return true
	})
	var params struct {
		RegionID  uint64 `json:"region_id"`
		ToStoreID uint64 `json:"to_store_id"`
	}
	if err := json.Unmarshal(p1.Params, &params); err != nil || p1.ActionType != "transfer_leader" {
		t.Fatalf("proposal %+v: %v", p1, err)
	}
	// PD's answers, retried through a PD leader change (a loaded machine
	// can make PD's own leader lease lapse: "redirect to not leader").
	leaderStore := func(region uint64) uint64 {
		var r struct {
			Leader struct {
				StoreID uint64 `json:"store_id"`
			} `json:"leader"`
		}
		var err error
		waitFor(t, fmt.Sprintf("PD to answer for region %d", region), 30*time.Second, func() bool {
			err = c.GetJSON(ctx, "/region/id/"+strconv.FormatUint(region, 10), &r)
			return err == nil
		})
		return r.Leader.StoreID
	}
	from := leaderStore(params.RegionID)
	// Another region on the same store, for an approval request that must
	// survive the failover: proposed by root through r1, awaiting another
	// person.
	var regions struct {
		Regions []struct {
			ID     uint64 `json:"id"`
			Leader struct {
				StoreID uint64 `json:"store_id"`
			} `json:"leader"`
		} `json:"regions"`
	}
	waitFor(t, "PD's regions", 30*time.Second, func() bool { return c.GetJSON(ctx, "/regions", &regions) == nil })
	var other uint64
	for _, r := range regions.Regions {
		if r.ID != params.RegionID && r.Leader.StoreID == from {
			other = r.ID
		}
	}
	if other == 0 {
		t.Fatalf("no second region led by store %d: %+v", from, regions)
	}
	var p2 action.Proposal
	r1.api(t, "POST", "/api/v1/actions", "", map[string]any{"action_type": "transfer_leader",
		"params":    map[string]uint64{"region_id": other, "to_store_id": params.ToStoreID},
		"ticket_id": p1.TicketID, "reason": "pending across a failover"}, &p2)

	// Approve p1 through r2 (a follower): the leader r0 claims it and dies.
	r2.api(t, "POST", fmt.Sprintf("/api/v1/actions/%d/approve", p1.ID), "", map[string]any{}, nil)
	select {
	case <-r0.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("r0 did not die at its crash point")
	}
	died := time.Now()
	var next *haReplica
	waitFor(t, "a new leader after the kill", 3*ttl+10*time.Second, func() bool {
		ls := leaders(r1, r2)
		if len(ls) == 1 {
			next = ls[0]
		}
		return len(ls) == 1
	})
	failover := time.Since(died)
	_, term1 := next.leading()
	t.Logf("failover after kill -9: %s (lease TTL %s); %s leads with term %d (was %d)", failover.Round(10*time.Millisecond), ttl, next.name, term1, term0)
	if term1 <= term0 {
		t.Errorf("new term %d is not above the dead leader's %d", term1, term0)
	}
	done := waitEnded(t, st, p1.ID)
	if done.Status != action.Failed || !strings.HasPrefix(done.Result, executor.Interrupted) || !strings.Contains(done.Result, fmt.Sprintf("term %d", term1)) {
		t.Fatalf("the killed leader's action ended %s %q; want failed, interrupted, recovered by term %d", done.Status, done.Result, term1)
	}
	terms, err := st.Terms(ctx, p1.ID)
	if err != nil || terms[p1.ID] != (store.ProposalTerms{Claim: term0, Finish: term1}) {
		t.Fatalf("terms of action %d = %+v, %v; want claim %d finish %d", p1.ID, terms, err, term0, term1)
	}
	execs := 0
	for _, rec := range recordsOf(t, st, p1.ID) {
		if rec.IsExecution() {
			execs++
			if rec.Success {
				t.Errorf("a successful execution record for the interrupted action: %+v", rec)
			}
		}
	}
	if execs != 1 {
		t.Errorf("%d execution records for action %d, want 1 (interrupted)", execs, p1.ID)
	}
	if got := leaderStore(params.RegionID); got != from {
		t.Errorf("region %d leader moved to store %d: the interrupted action was executed", params.RegionID, got)
	}

	// The approval request survived; tara approves it through the replica
	// that does not lead. The store applying it is slow, so the new leader
	// is still following PD's operator when it is paused.
	third := r1
	if next == r1 {
		third = r2
	}
	if cur, err := st.Proposal(ctx, p2.ID); err != nil || cur.Status != action.Proposed {
		t.Fatalf("the pending approval request after the failover: %+v, %v", cur, err)
	}
	if full {
		haPause(t, c, st, haPauseArgs{ttl: ttl, from: from, other: other, to: params.ToStoreID, p2: p2.ID,
			next: next, third: third, term1: term1, secret: secret, leaderStore: leaderStore, leaders: func() []*haReplica { return leaders(r1, r2) }})
	}
	haFinalChecks(t, st, db.keyDir, p1.TicketID)
}

// haPauseArgs is what step 3 of TestHAFailover needs from steps 1 and 2.
type haPauseArgs struct {
	ttl             time.Duration
	from, other, to uint64 // store leading region other, the region, the target store
	p2              int64  // the approval request that survived the kill
	next, third     *haReplica
	term1           int64
	secret          string
	leaderStore     func(region uint64) uint64
	leaders         func() []*haReplica
}

// haPause is step 3 of TestHAFailover: p2 is approved through the third
// replica while store from applies slowly, the leader (next) is paused
// past its lease, the third leads and recovers p2, and the resumed
// leader's finish is refused.
func haPause(t *testing.T, c *testcluster.Cluster, st *store.Store, a haPauseArgs) {
	ctx := context.Background()
	ttl, from, other, next, third, term1 := a.ttl, a.from, a.other, a.next, a.third, a.term1
	p2 := action.Proposal{ID: a.p2}
	params := struct{ ToStoreID uint64 }{a.to}
	secret, leaderStore := a.secret, a.leaderStore
	if err := c.Sim.SetApplyDelay(from, 4*ttl); err != nil {
		t.Fatal(err)
	}
	third.api(t, "POST", fmt.Sprintf("/api/v1/actions/%d/approve", p2.ID), secret, map[string]any{}, nil)
	waitFor(t, "PD's operator for the approved action", 20*time.Second, func() bool {
		return c.GetJSON(ctx, "/operators/"+strconv.FormatUint(other, 10), &json.RawMessage{}) == nil
	})
	if err := next.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	waitFor(t, "the third replica to lead", 3*ttl+10*time.Second, func() bool { ok, _ := third.leading(); return ok })
	t.Logf("failover after SIGSTOP: %s", time.Since(paused).Round(10*time.Millisecond))
	_, term2 := third.leading()
	done := waitEnded(t, st, p2.ID)
	if done.Status != action.Failed || !strings.HasPrefix(done.Result, executor.Interrupted) {
		t.Fatalf("the paused leader's action ended %s %q; want interrupted", done.Status, done.Result)
	}
	if err := next.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resumed leader to step down", 30*time.Second, func() bool {
		h, err := next.health()
		return err == nil && h.Role == "follower"
	})
	waitFor(t, "the resumed leader's refused finish", 4*ttl+20*time.Second, func() bool {
		return strings.Contains(next.logText(t), store.ErrStaleTerm.Error())
	})
	terms, err := st.Terms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if terms[p2.ID] != (store.ProposalTerms{Claim: term1, Finish: term2}) {
		t.Errorf("terms of action %d = %+v; want claim %d, finish %d (the newer leader's)", p2.ID, terms[p2.ID], term1, term2)
	}
	if got, err := st.LeaderTerm(ctx); err != nil || got != term2 {
		t.Errorf("highest recorded term = %d, %v; want %d", got, err, term2)
	}
	late := 0
	for _, rec := range recordsOf(t, st, p2.ID) {
		if strings.Contains(rec.Message, "deposed leader") {
			late++
		}
	}
	if late > 1 {
		t.Errorf("%d late records from the deposed leader", late)
	}
	waitFor(t, "PD to carry out the transfer", 4*ttl+20*time.Second, func() bool { return leaderStore(other) == params.ToStoreID })
	if ls := a.leaders(); len(ls) != 1 || ls[0] != third {
		t.Errorf("leaders = %v, want %s", names(ls), third.name)
	}
}

// haFinalChecks: one ticket, diagnosed once; two proposals (the rules' and
// the person's); the audit trail verifies, signatures and every replica's
// checkpoint file (audit.checkpoint.<replica>, one per replica that
// recorded) included.
func haFinalChecks(t *testing.T, st *store.Store, keyDir string, ticketID int64) {
	ctx := context.Background()
	ts, err := st.Tickets(ctx, store.TicketFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 {
		t.Errorf("%d tickets, want 1: %+v", len(ts), ts)
	}
	if past, err := st.Diagnoses(ctx, ticketID); err != nil || len(past) != 0 {
		t.Errorf("ticket %d was diagnosed again: %d archived diagnoses, %v", ticketID, len(past), err)
	}
	ps, err := st.Proposals(ctx, store.ProposalFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Errorf("%d proposals, want 2 (the rules' and the person's)", len(ps))
	}
	// The replicas that recorded wrote their own checkpoint files, none
	// the shared audit.checkpoint.
	for _, c := range verifyAudit(t, st, keyDir, 1).Checkpoints {
		if c.File == auditkey.CheckpointFile {
			t.Errorf("a replica appended to the shared %s: %+v", auditkey.CheckpointFile, c)
		}
	}
}

func waitEnded(t *testing.T, st *store.Store, id int64) action.Proposal {
	t.Helper()
	var p action.Proposal
	waitFor(t, fmt.Sprintf("action %d to end", id), 60*time.Second, func() bool {
		var err error
		p, err = st.Proposal(context.Background(), id)
		return err == nil && p.Status.Final()
	})
	return p
}

func recordsOf(t *testing.T, st *store.Store, id int64) []action.Record {
	t.Helper()
	recs, err := st.Records(context.Background(), store.RecordFilter{ProposalID: id})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func names(rs []*haReplica) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.name)
	}
	return out
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
