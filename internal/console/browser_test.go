package console_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/daemon"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/ticket"
)

// ScreenshotsEnv names a directory the browser test writes PNGs of the
// main pages into (scripts/screenshots.sh sets it to docs/console).
const ScreenshotsEnv = "OPERATOR_CONSOLE_SCREENSHOTS"

const (
	taraToken  = "opr_tara_console_test_approver_0000000001"
	aliceToken = "opr_alice_console_test_approver_000000002"
	vicToken   = "opr_vic_console_test_viewer_0000000000003"
)

// chromium finds Debian's chromium (or $CHROMIUM). Without one the test
// skips, except in CI ($CI=true), where it fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found and CI=true: scripts/test.sh installs Debian's chromium")
	}
	t.Skip("chromium not found: install Debian's chromium (scripts/test.sh does) to run the browser tests")
	return ""
}

// browser starts headless Chromium with a fresh profile and no network
// chatter of its own (this machine's network is closed).
func browser(t *testing.T, bin string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true), chromedp.Flag("metrics-recording-only", true),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	// The first action on a context starts the browser (or tab) for it: on
	// ctx itself, so that later per-step deadlines do not end it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

type consoleEnv struct {
	t    *testing.T
	c    *testcluster.Cluster
	base string // http://127.0.0.1:port/ui
	db   string
	st   *store.Store
	shot string
}

func (e *consoleEnv) do(ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	e.t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

// waitJS waits (bounded) until the JavaScript expression is true,
// re-evaluating it every 100 ms across page loads.
func (e *consoleEnv) waitJS(ctx context.Context, what, expr string, limit time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ""`))
	e.t.Fatalf("waiting for %s (%s): timed out after %s (last error %v)\npage text:\n%s", what, expr, limit, last, body)
}

// click clicks the element sel in one JavaScript step (a live update may
// replace the element between a lookup and a click by protocol),
// retrying until it exists.
func (e *consoleEnv) click(ctx context.Context, what, sel string) {
	e.t.Helper()
	e.waitJS(ctx, what, fmt.Sprintf(`((el) => el ? (el.click(), true) : false)(document.querySelector(%q))`, sel), 20*time.Second)
}

func evalJS[T any](e *consoleEnv, ctx context.Context, expr string, opts ...chromedp.EvaluateOption) T {
	e.t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		e.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func textOf(sel string) string {
	return fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent`, sel)
}

// screenshot saves the page as NAME.png when ScreenshotsEnv is set.
func (e *consoleEnv) screenshot(ctx context.Context, name string) {
	e.t.Helper()
	if e.shot == "" {
		return
	}
	var (
		png []byte
		err error
	)
	for range 10 { // a live update may be swapping the page's parts
		if png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		e.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(e.shot, name+".png"), png, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *consoleEnv) login(ctx context.Context, token, name string) {
	e.t.Helper()
	e.do(ctx, "log in as "+name,
		chromedp.Navigate(e.base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
	)
	e.waitJS(ctx, "logged in as "+name, fmt.Sprintf(`%s.startsWith(%q)`, textOf("#whoami"), name), 20*time.Second)
}

func (e *consoleEnv) logout(ctx context.Context) {
	e.t.Helper()
	e.click(ctx, "log out", "header form button")
	e.waitJS(ctx, "the log-in page", `!!document.querySelector("#token")`, 20*time.Second)
}

// proposal waits for a pending proposal of ticketID with an id above
// after.
func (e *consoleEnv) proposal(ticketID, after int64) action.Proposal {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		ps, err := e.st.Proposals(context.Background(), store.ProposalFilter{Statuses: []action.Status{action.Proposed}})
		if err != nil {
			e.t.Fatal(err)
		}
		for _, p := range ps {
			if p.ID > after && (ticketID == 0 || p.TicketID == ticketID) {
				return p
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	e.t.Fatalf("no proposal after %d within 90s", after)
	return action.Proposal{}
}

// TestConsoleInBrowser drives the console in real headless Chromium
// against a real pd-server with simulated stores and the daemon
// (in-process): log in, the leader-imbalance ticket, an injected script
// that stays inert, reject with a reason, a viewer who cannot approve, a
// dry run, two-person approval, the status changing live (server-sent
// events), the effect in PD, the audit record and the verified chain.
func TestConsoleInBrowser(t *testing.T) {
	bin := chromium(t)
	ctx := context.Background()
	c := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 26, SkewLeaders: true, StoreHeartbeat: time.Second, RegionHeartbeat: 2 * time.Second, StoreLabels: []map[string]string{{"zone": "z1"}, {"zone": "z2"}, {"zone": "z3"}}})
	// As scripts/demo.sh: pause balance-leader-scheduler, then put every
	// leader back on the first store.
	if err := c.PauseScheduler(ctx, "balance-leader-scheduler", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sim.MoveLeaders(c.Sim.StoreIDs()[0]); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	e := &consoleEnv{t: t, c: c, db: filepath.Join(dir, "operator.db"), shot: os.Getenv(ScreenshotsEnv)}
	if e.shot != "" {
		if err := os.MkdirAll(e.shot, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`
[pd]
endpoints = [%q]
[database]
path = %q
[monitor]
interval = "1s"
quiet-period = "5s"
[server]
listen = "127.0.0.1:0"
socket = "-"
[console]
enabled = true
prefix = "/ops/ui"
[actions]
approvals-required = { low = 2, medium = 2, high = 2 }
[invariants]
default-for = "0s"
leader-imbalance-min-diff = 12
[[auth.tokens]]
name = "tara"
role = "approver"
sha256 = %q
[[auth.tokens]]
name = "alice"
role = "approver"
sha256 = %q
[[auth.tokens]]
name = "vic"
role = "viewer"
sha256 = %q
`, c.PDURL, e.db, auth.HashToken(taraToken), auth.HashToken(aliceToken), auth.HashToken(vicToken))
	cfgPath := filepath.Join(dir, "operator.toml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Resolve(cfgPath, func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	d, err := daemon.New(daemon.Options{Config: cfg, Version: "console-test", Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnListen: func(a string) { addr <- a }})
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(dctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	select {
	case a := <-addr:
		e.base = "http://" + a + "/ops/ui"
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not listen within 30s")
	}
	e.st, err = store.Open(ctx, e.db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.st.Close() })

	// The rules diagnose the leader imbalance and propose an action.
	p1 := e.proposal(0, 0)
	tk, err := e.st.Ticket(ctx, p1.TicketID)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Invariant != "leader_imbalance" {
		t.Fatalf("first proposal %d is for %s, want leader_imbalance", p1.ID, tk.Invariant)
	}
	// A hostile model answer: a script and terminal escape codes in the
	// rationale and in the diagnosis markdown.
	db, err := sql.Open("sqlite", "file:"+e.db+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const script = `<script>window.__pwned=1</script>`
	if _, err := db.Exec(`UPDATE action_proposals SET rationale = ? || rationale WHERE id = ?`, script+"\x1b[2J\x1b[32mapproved by security team\x1b[0m ", p1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE tickets SET diagnosis_markdown = diagnosis_markdown || ? WHERE id = ?`,
		"\n\n<script>window.__pwned=2</script>\n\n<img src=x onerror=\"window.__pwned=3\">\n\n[details](javascript:window.__pwned=4)\n\n\x1b[31m**bold** `code`\x1b[0m\n", tk.ID); err != nil {
		t.Fatal(err)
	}

	b := browser(t, bin)
	// Unauthenticated: the log-in page.
	e.do(b, "open the console", chromedp.Navigate(e.base+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	e.screenshot(b, "login")
	e.login(b, taraToken, "tara")
	e.waitJS(b, "the tickets list", `!!document.querySelector('#tickets a[href$="/tickets/`+fmt.Sprint(tk.ID)+`"]')`, 20*time.Second)
	e.screenshot(b, "tickets")

	// The ticket: evidence, diagnosis (markdown, raw HTML dropped), timeline.
	e.click(b, "open the ticket", `#tickets a.key[href$="/tickets/`+fmt.Sprint(tk.ID)+`"]`)
	e.waitJS(b, "the ticket page", `!!document.querySelector("#diagnosis")`, 20*time.Second)
	if got := evalJS[bool](e, b, `window.__pwned === undefined`); !got {
		t.Fatal("a script injected through the diagnosis ran")
	}
	if n := evalJS[int](e, b, `document.querySelectorAll("#diagnosis script, #diagnosis img, #diagnosis a[href^=javascript]").length`); n != 0 {
		t.Fatalf("the diagnosis rendered %d script/img/javascript: elements", n)
	}
	if n := evalJS[int](e, b, `document.querySelectorAll("#diagnosis strong, #diagnosis code").length`); n < 2 {
		t.Errorf("the diagnosis' markdown (bold, code) was not rendered: %d elements", n)
	}
	if evalJS[bool](e, b, `document.body.innerText.includes("\u001b")`) {
		t.Fatal("an escape character reached the page")
	}
	e.waitJS(b, "evidence and timeline", `document.querySelectorAll("table.kv tbody tr").length > 0 && `+textOf("#timeline")+`.includes("proposed by rules")`, 10*time.Second)
	e.screenshot(b, "ticket")

	// The action: the rationale shows the script as text.
	e.click(b, "open the action", `#ticket-actions a[href$="/actions/`+fmt.Sprint(p1.ID)+`"]`)
	e.waitJS(b, "the action page", `!!document.querySelector("#rationale")`, 20*time.Second)
	if !evalJS[bool](e, b, textOf("#rationale")+`.includes(`+jsString(script)+`)`) {
		t.Fatalf("the rationale does not show the injected script as text: %q", evalJS[string](e, b, textOf("#rationale")))
	}
	if evalJS[bool](e, b, `window.__pwned !== undefined || document.body.innerText.includes("\u001b")`) {
		t.Fatal("the injected rationale ran or kept its escape codes")
	}
	p2 := p1 // approved below by two people
	actionURL := fmt.Sprintf("%s/actions/%d", e.base, p2.ID)
	e.logout(b)

	// A viewer sees no decision buttons, and a forged POST is refused.
	e.login(b, vicToken, "vic")
	e.do(b, "viewer opens the action", chromedp.Navigate(actionURL), chromedp.WaitVisible(chromedp.CSS("#viewer-note")))
	if n := evalJS[int](e, b, `document.querySelectorAll("#btn-approve, #btn-reject, #btn-dry-run").length`); n != 0 {
		t.Fatalf("a viewer sees %d decision buttons", n)
	}
	forge := fmt.Sprintf(`(async () => {
  const body = new URLSearchParams({csrf: document.querySelector("input[name=csrf]").value});
  const r = await fetch(%q, {method: "POST", body, credentials: "same-origin"});
  return r.status;
})()`, fmt.Sprintf("/ops/ui/actions/%d/approve", p2.ID))
	if st := evalJS[int](e, b, forge, chromedp.EvalAwaitPromise); st != 403 {
		t.Fatalf("a viewer's forged approval answered %d, want 403", st)
	}
	noCSRF := fmt.Sprintf(`fetch(%q, {method: "POST", body: new URLSearchParams({csrf: "x"}), credentials: "same-origin"}).then(r => r.status)`, fmt.Sprintf("/ops/ui/actions/%d/reject", p2.ID))
	if st := evalJS[int](e, b, noCSRF, chromedp.EvalAwaitPromise); st != 403 {
		t.Fatalf("a POST with a wrong CSRF token answered %d, want 403", st)
	}
	if apps, err := e.st.Approvals(ctx, p2.ID); err != nil || len(apps) != 0 {
		t.Fatalf("approvals after the viewer's forged POST: %v %v", apps, err)
	}
	e.screenshot(b, "action-viewer")
	e.logout(b)

	// tara: dry run (preconditions, exact PD requests), then approval 1 of 2.
	e.login(b, taraToken, "tara")
	e.do(b, "tara opens the action", chromedp.Navigate(actionURL), chromedp.WaitVisible(chromedp.CSS("#btn-dry-run")))
	e.click(b, "dry run", "#btn-dry-run")
	e.waitJS(b, "the dry run's preconditions", `document.querySelectorAll("#preconditions tbody tr").length > 0 && `+textOf("#requests")+`.includes("/pd/api/v1/")`, 30*time.Second)
	if v := evalJS[string](e, b, textOf("#dry-verdict")); !strings.HasPrefix(v, "VALID") {
		t.Fatalf("dry run verdict %q", v)
	}
	e.screenshot(b, "action-dry-run")
	e.click(b, "approve as tara", "#btn-approve")
	e.waitJS(b, "approval 1 of 2", textOf("#approvals")+`.includes("Approval 1 of 2 by tara")`, 20*time.Second)
	if n := evalJS[int](e, b, `document.querySelectorAll("#btn-approve").length`); n != 0 {
		t.Fatal("tara can approve twice")
	}
	e.logout(b)

	// alice, the second approver: one tab approves, another shows the
	// status change live (server-sent events, no reload).
	e.login(b, aliceToken, "alice")
	e.do(b, "alice opens the action", chromedp.Navigate(actionURL), chromedp.WaitVisible(chromedp.CSS("#btn-approve")))
	if got := evalJS[string](e, b, textOf("#approvals")); !strings.Contains(got, "Approval 1 of 2 by tara; you can add yours") {
		t.Fatalf("second approver's view: %q", got)
	}
	e.screenshot(b, "action-second-approver")
	watch, cancelWatch := chromedp.NewContext(b) // a second tab, same session
	defer cancelWatch()
	if err := chromedp.Do(watch); err != nil {
		t.Fatal(err)
	}
	e.do(watch, "the watching tab", chromedp.Navigate(actionURL), chromedp.WaitVisible(chromedp.CSS("#status")))
	e.waitJS(watch, "live updates connected", `document.querySelector("#live").classList.contains("on")`, 20*time.Second)
	evalJS[chromedp.Void](e, watch, `window.__sameDocument = 42`)
	e.click(b, "approve as alice", "#btn-approve")
	e.waitJS(watch, "completed, live", textOf("#status")+` === "completed"`, 60*time.Second)
	if v := evalJS[int](e, watch, `window.__sameDocument || 0`); v != 42 {
		t.Fatal("the watching tab reloaded instead of updating live")
	}

	// The effect in PD.
	switch p2.ActionType {
	case "resume_scheduler":
		var paused []string
		if err := c.GetJSON(ctx, "/schedulers?status=paused", &paused); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(paused, "balance-leader-scheduler") {
			t.Fatalf("balance-leader-scheduler still paused in PD: %v", paused)
		}
		var enabled []string
		if err := c.GetJSON(ctx, "/schedulers", &enabled); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(enabled, "balance-leader-scheduler") {
			t.Fatalf("balance-leader-scheduler is not enabled in PD after the resume: %v", enabled)
		}
		// PD, running again, moves leaders off the skewed store: 30/0/0
		// becomes even to within PD's tolerance.
		wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
		defer wcancel()
		if err := c.WaitFor(wctx, func() (bool, error) { sp := leaderSpread(ctx, c); return sp >= 0 && sp <= 12, nil }); err != nil {
			t.Fatalf("PD did not move the leaders after the approved resume (spread %d): %v", leaderSpread(ctx, c), err)
		}
	case "transfer_leader":
		var params struct {
			RegionID  uint64 `json:"region_id"`
			ToStoreID uint64 `json:"to_store_id"`
		}
		if err := json.Unmarshal(p2.Params, &params); err != nil {
			t.Fatal(err)
		}
		var region struct {
			Leader struct {
				StoreID uint64 `json:"store_id"`
			} `json:"leader"`
		}
		if err := c.GetJSON(ctx, fmt.Sprintf("/region/id/%d", params.RegionID), &region); err != nil {
			t.Fatal(err)
		}
		if region.Leader.StoreID != params.ToStoreID {
			t.Fatalf("region %d is led by store %d, want %d", params.RegionID, region.Leader.StoreID, params.ToStoreID)
		}
	default:
		t.Fatalf("unexpected proposal %s", p2.ActionType)
	}
	// The action page: the execution's requests and the state diff; the
	// audit records name both approvers.
	e.do(b, "reload the action", chromedp.Navigate(actionURL), chromedp.WaitVisible(chromedp.CSS("#diff-stores")))
	rec := evalJS[string](e, b, textOf("#records"))
	for _, want := range []string{"approved by tara", "approved by alice", "executed by", "succeeded", "dry run by tara"} {
		if !strings.Contains(rec, want) {
			t.Errorf("audit records on the action page lack %q:\n%s", want, rec)
		}
	}
	if p2.ActionType == "resume_scheduler" {
		if got := evalJS[string](e, b, textOf("#diff-values")); !strings.Contains(got, "balance-leader-scheduler") {
			t.Errorf("the diff does not show the paused scheduler: %q", got)
		}
	}
	e.screenshot(b, "action")

	// The audit trail verifies.
	e.do(b, "audit", chromedp.Navigate(e.base+"/audit"), chromedp.WaitVisible(chromedp.CSS("#verify-result")))
	if got := evalJS[string](e, b, textOf("#verify-result")); !strings.HasPrefix(got, "OK") {
		t.Fatalf("audit verification on the console: %q", got)
	}
	e.screenshot(b, "audit")

	// The cluster as PD sees it.
	e.do(b, "cluster", chromedp.Navigate(e.base+"/cluster"), chromedp.WaitVisible(chromedp.CSS("#stores")))
	if n := evalJS[int](e, b, `document.querySelectorAll("#stores tbody tr svg").length`); n != 3 {
		t.Fatalf("cluster page: %d store charts, want 3", n)
	}
	if got := evalJS[string](e, b, textOf("#paused")); strings.Contains(got, "balance-leader-scheduler") && p2.ActionType == "resume_scheduler" {
		t.Errorf("cluster page still lists balance-leader-scheduler as paused: %q", got)
	}
	e.screenshot(b, "cluster")

	// PD's balancing holds for the quiet period: the monitor resolves the
	// ticket (resume_scheduler hands the work back to PD: the executor does
	// not reopen the ticket while PD evens the leaders out).
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := c.WaitFor(wctx, func() (bool, error) {
		tk, err := e.st.Ticket(ctx, p2.TicketID)
		return err == nil && tk.Status == ticket.Resolved, nil
	}); err != nil {
		tk, _ := e.st.Ticket(ctx, p2.TicketID)
		t.Fatalf("ticket %d is %s after PD evened the leaders out, want resolved: %v", p2.TicketID, tk.Status, err)
	}

	// Someone pauses the scheduler again and the leaders skew again: a new
	// ticket and a new proposal, which alice rejects with a reason.
	if err := c.PauseScheduler(ctx, "balance-leader-scheduler", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sim.MoveLeaders(c.Sim.StoreIDs()[0]); err != nil {
		t.Fatal(err)
	}
	p3 := e.proposal(0, p2.ID)
	e.do(b, "open the next proposal", chromedp.Navigate(fmt.Sprintf("%s/actions/%d", e.base, p3.ID)), chromedp.WaitVisible(chromedp.CSS("#btn-reject")))
	e.do(b, "type a reason", chromedp.SendKeys(chromedp.CSS("#reason"), "moving leaders by hand tonight"))
	e.click(b, "reject", "#btn-reject")
	e.waitJS(b, "rejected", textOf("#status")+` === "rejected" && `+textOf("#rejection")+`.includes("moving leaders by hand tonight")`, 20*time.Second)
	if got := evalJS[string](e, b, textOf("#records")); !strings.Contains(got, "rejected by alice: moving leaders by hand tonight (approver)") {
		t.Errorf("the rejection's audit record: %q", got)
	}
	e.screenshot(b, "action-rejected")

	// A phone-sized screen.
	e.do(b, "phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(fmt.Sprintf("%s/tickets/%d", e.base, tk.ID)),
		chromedp.WaitVisible(chromedp.CSS("#timeline")))
	if w := evalJS[int](e, b, `document.documentElement.scrollWidth`); w > 400 {
		t.Errorf("the ticket page scrolls sideways on a phone: %d px wide", w)
	}
	e.screenshot(b, "ticket-phone")
}

// leaderSpread is max-min of the Up stores' leader counts in PD (-1 when
// PD cannot be read).
func leaderSpread(ctx context.Context, c *testcluster.Cluster) int {
	sp, err := c.LeaderSpread(ctx)
	if err != nil {
		return -1
	}
	return sp
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
