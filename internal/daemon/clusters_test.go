package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/cli"
	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/daemon"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/tikv"
)

// TestTwoClustersOneDatabase: two real pd-servers (two TiKV clusters of
// simulated stores, each with its leaders skewed) and two daemons, "east"
// and "west", on ONE SQLite file. Each cluster gets its own ticket and
// proposal; the CLI, the API and the console show both and filter by
// cluster; east's action, approved through WEST's daemon, is run by
// east's executor against east's PD only (the region's leader moves in
// east, nothing moves in west); a daemon that claims the name "east" for
// west's PD is refused (exit 11's error).
func TestTwoClustersOneDatabase(t *testing.T) {
	ca := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 1, SkewLeaders: true, PauseBalanceLeader: true})
	cb := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 1, SkewLeaders: true, PauseBalanceLeader: true})
	dir := t.TempDir()
	db := filepath.Join(dir, "operator.db")
	const viewerSecret = "viewer-secret-for-the-two-clusters-test"
	cfgOf := func(name, pdURL string) config.Config {
		cfg := config.Default()
		cfg.PD.Endpoints = []string{pdURL}
		cfg.Database.Path = db
		cfg.Cluster.Name = name
		cfg.Monitor.Interval = config.Duration{Duration: time.Second}
		cfg.Monitor.Quiet = config.Duration{Duration: 2 * time.Second}
		cfg.Server.Listen = "127.0.0.1:0"
		cfg.Server.Socket = filepath.Join(dir, name+".sock")
		cfg.Invariants.DefaultFor = 0
		cfg.Invariants.LeaderImbalanceMinDiff = 4
		cfg.Console.Enabled = true
		cfg.Auth.Tokens = []auth.Token{{Name: "vera", Role: "viewer", SHA256: auth.HashToken(viewerSecret)}}
		return cfg
	}
	start := func(cfg config.Config) (base string, done chan error) {
		t.Helper()
		addr := make(chan string, 1)
		d, err := daemon.New(daemon.Options{Config: cfg, Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnListen: func(a string) { addr <- a }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done = make(chan error, 1)
		exited := make(chan struct{})
		go func() { done <- d.Run(ctx); close(exited) }()
		t.Cleanup(func() { cancel(); <-exited })
		select {
		case a := <-addr:
			return "http://" + a, done
		case err := <-done:
			t.Fatalf("Run %s: %v", cfg.Cluster.Name, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("daemon %s did not start", cfg.Cluster.Name)
		}
		return "", nil
	}
	cfgA, cfgB := cfgOf("east", ca.PDURL), cfgOf("west", cb.PDURL)
	start(cfgA) // first: it creates the file and the audit key the other shares
	baseB, _ := start(cfgB)

	ctx := context.Background()
	st, err := store.Open(ctx, db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Each cluster's ticket, diagnosed by its own daemon with a proposal.
	prop := map[string]action.Proposal{}
	ids := map[string]string{}
	waitFor(t, "both clusters' transfer_leader proposals", 90*time.Second, func() bool {
		for _, name := range []string{"east", "west"} {
			id, err := st.ClusterNamed(ctx, name)
			if err != nil {
				return false
			}
			ids[name] = id
			ps, err := st.Proposals(ctx, store.ProposalFilter{Cluster: id, Statuses: []action.Status{action.Proposed}})
			if err != nil || len(ps) == 0 {
				return false
			}
			prop[name] = ps[0]
		}
		return true
	})
	if ids["east"] == ids["west"] {
		t.Fatalf("two pd-servers with one cluster id %s", ids["east"])
	}
	tickets := map[string]int64{}
	for name, p := range prop {
		tk, err := st.Ticket(ctx, p.TicketID)
		if err != nil || tk.Key != "leader_imbalance/cluster" || tk.ClusterID != ids[name] || p.ActionType != tikv.ActionTransferLeader {
			t.Fatalf("%s: ticket %+v, proposal %+v, %v", name, tk, p, err)
		}
		tickets[name] = tk.ID
	}
	if tickets["east"] == tickets["west"] {
		t.Fatal("one ticket for the same invariant and subject on two clusters")
	}

	// The CLI: every cluster with a CLUSTER column, or one with --cluster.
	cliRun := func(args ...string) string {
		t.Helper()
		f, out, errOut := clitest.Factory(t, db)
		if code := cli.Execute(ctx, f, cli.NewRootCmd(f), args); code != 0 {
			t.Fatalf("operator %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out.String()
	}
	all := cliRun("tickets", "list", "--wide")
	if !strings.Contains(all, "CLUSTER") || !strings.Contains(all, " east ") || !strings.Contains(all, " west ") {
		t.Errorf("tickets list without --cluster:\n%s", all)
	}
	var rows []struct {
		ID        int64  `json:"id"`
		ClusterID string `json:"cluster_id"`
	}
	if err := json.Unmarshal([]byte(cliRun("-o", "json", "tickets", "list", "--cluster", "west")), &rows); err != nil ||
		len(rows) != 1 || rows[0].ID != tickets["west"] || rows[0].ClusterID != ids["west"] {
		t.Errorf("tickets list --cluster west = %+v, %v", rows, err)
	}
	if out := cliRun("actions", "list", "--cluster", "east"); !strings.Contains(out, "#"+strconv.FormatInt(tickets["east"], 10)) ||
		strings.Contains(out, "#"+strconv.FormatInt(tickets["west"], 10)+" ") || strings.Contains(out, "CLUSTER") {
		t.Errorf("actions list --cluster east:\n%s", out)
	}
	f, _, errOut := clitest.Factory(t, db)
	if code := cli.Execute(ctx, f, cli.NewRootCmd(f), []string{"tickets", "list", "--cluster", "south"}); code != 2 ||
		!strings.Contains(errOut.String(), "east, west") {
		t.Errorf("unknown --cluster: exit %d, %s", code, errOut)
	}

	// The API and the console (west's daemon) filter by cluster.
	var apiTickets []struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal([]byte(getAuth(t, baseB+"/api/v1/tickets?cluster=east", viewerSecret)), &apiTickets); err != nil ||
		len(apiTickets) != 1 || apiTickets[0].ID != tickets["east"] {
		t.Errorf("GET /api/v1/tickets?cluster=east = %+v, %v", apiTickets, err)
	}
	ui := consoleLogin(t, baseB, viewerSecret)
	link := func(name string) string { return fmt.Sprintf(`href="/ui/tickets/%d"`, tickets[name]) }
	page := consoleGet(t, ui, baseB+"/ui/")
	if !strings.Contains(page, link("east")) || !strings.Contains(page, link("west")) ||
		!strings.Contains(page, `<td data-label="Cluster" class="cluster">east</td>`) || !strings.Contains(page, `<option value="west"`) {
		t.Errorf("console tickets page lacks a cluster's row or column:\n%s", page)
	}
	page = consoleGet(t, ui, baseB+"/ui/?cluster=west")
	if strings.Contains(page, link("east")) || !strings.Contains(page, link("west")) {
		t.Errorf("console ?cluster=west:\n%s", page)
	}

	// East's action, approved through west's daemon (over its socket),
	// runs on east's PD only.
	var params struct {
		RegionID  uint64 `json:"region_id"`
		ToStoreID uint64 `json:"to_store_id"`
	}
	if err := json.Unmarshal(prop["east"].Params, &params); err != nil {
		t.Fatal(err)
	}
	spreadB, err := cb.LeaderSpread(ctx)
	if err != nil {
		t.Fatal(err)
	}
	westClient := api.NewSocketClient(cfgB.SocketPath())
	if _, err := westClient.DryRun(ctx, prop["east"].ID); err == nil || !strings.Contains(err.Error(), "through that cluster's daemon") {
		t.Errorf("dry run of east's action through west's daemon (west's PD): %v", err)
	}
	res, err := westClient.Approve(ctx, prop["east"].ID, api.DecisionRequest{})
	if err != nil || res.Action.Status != action.Approved {
		t.Fatalf("approve east's action through west: %+v, %v", res, err)
	}
	var done action.Proposal
	waitFor(t, "east's action to finish", 60*time.Second, func() bool {
		done, err = st.Proposal(ctx, prop["east"].ID)
		return err == nil && (done.Status == action.Completed || done.Status == action.Failed || done.Status == action.Refused)
	})
	if done.Status != action.Completed {
		t.Fatalf("east's action ended %s: %s", done.Status, done.Result)
	}
	var region struct {
		Leader struct {
			StoreID uint64 `json:"store_id"`
		} `json:"leader"`
	}
	if err := ca.GetJSON(ctx, fmt.Sprintf("/region/id/%d", params.RegionID), &region); err != nil || region.Leader.StoreID != params.ToStoreID {
		t.Errorf("east's region %d leader on store %d (%v), want %d", params.RegionID, region.Leader.StoreID, err, params.ToStoreID)
	}
	if after, err := cb.LeaderSpread(ctx); err != nil || after != spreadB {
		t.Errorf("west's leader spread %d -> %d (%v): something ran on west's PD", spreadB, after, err)
	}
	if p, _ := st.Proposal(ctx, prop["west"].ID); p.Status != action.Proposed {
		t.Errorf("west's action is %s", p.Status)
	}
	recs, err := st.Records(ctx, store.RecordFilter{ProposalID: prop["east"].ID})
	if err != nil || len(recs) < 2 {
		t.Fatalf("east's records %+v, %v", recs, err)
	}
	for _, r := range recs {
		if r.ClusterID != ids["east"] {
			t.Errorf("east's %s record %d is bound to cluster %q", r.Event, r.ID, r.ClusterID)
		}
	}
	if out := cliRun("audit", "list", "--cluster", "west"); !strings.Contains(out, "no audit records") && strings.Contains(out, "#"+strconv.FormatInt(prop["east"].ID, 10)+" ") {
		t.Errorf("audit list --cluster west shows east's records:\n%s", out)
	}
	if rep, err := st.Verify(ctx); err != nil || !rep.OK {
		t.Errorf("audit verify of the shared chain: %+v, %v", rep, err)
	}

	// A name is bound to one PD cluster id: "east" pointed at west's PD
	// is refused, naming both ids.
	cfgC := cfgOf("east", cb.PDURL)
	cfgC.Server.Socket = filepath.Join(dir, "c.sock")
	cfgC.Console.Enabled = false
	_, doneC := start(cfgC)
	select {
	case err := <-doneC:
		if !errors.Is(err, store.ErrWrongCluster) || !strings.Contains(err.Error(), ids["east"]) || !strings.Contains(err.Error(), ids["west"]) {
			t.Errorf("east's name on west's PD: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon claiming east's name for west's PD kept running")
	}
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func getAuth(t *testing.T, u, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return string(b)
}

func consoleLogin(t *testing.T, base, token string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("POST", base+"/ui/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("console log-in: %d", resp.StatusCode)
	}
	return c
}

func consoleGet(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return string(b)
}
