package gather_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/gather"
	"github.com/tikvops/operator/internal/diagnose/rules"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// TestRealOneReadFails: a loopback proxy in front of the real PD answers
// 500 for GET /pd/api/v1/operators and for the schedule configuration.
// Gather still builds the context from everything else and names the
// failed reads; the rules diagnose the ticket, list what they could not
// read, and withdraw any proposal that depended on it.
func TestRealOneReadFails(t *testing.T) {
	tc, c := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tk := leaderTicket(t, ctx, c)

	target, err := url.Parse(tc.PDURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/pd/api/v1/operators") || r.URL.Path == "/pd/api/v1/config/schedule" {
			http.Error(w, `"injected failure \u001b[31m"`, http.StatusInternalServerError)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	broken, err := pd.New([]string{srv.URL}, pd.WithTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	g := gather.New(broken, gather.Options{Logger: quiet()})
	gc, err := g.Gather(ctx, tk)
	if err != nil {
		t.Fatalf("gather with one endpoint failing: %v", err)
	}
	for _, src := range []string{tikv.SourceOperators, tikv.SourceSchedule} {
		if gc.SourceErrors[src] == "" {
			t.Errorf("source errors %v lack %s", gc.SourceErrors, src)
		}
	}
	if len(gc.Stores) == 0 || len(gc.Regions) == 0 {
		t.Errorf("context lost what could be read: %d stores, %d regions", len(gc.Stores), len(gc.Regions))
	}
	d, err := rules.New(rules.Options{}).Diagnose(ctx, gc)
	if err != nil {
		t.Fatal(err)
	}
	ev := strings.Join(d.Evidence, "\n")
	if d.ProposedAction != nil || !strings.Contains(d.NoActionReason, "could not be read") || !strings.Contains(ev, "could not read operators") {
		t.Errorf("diagnosis with operators unread: proposal %+v, reason %q, evidence:\n%s", d.ProposedAction, d.NoActionReason, ev)
	}
	// The same ticket through the real PD proposes again.
	d, err = rules.New(rules.Options{}).Diagnose(ctx, mustGather(t, gather.New(c, gather.Options{Logger: quiet()}), ctx, tk))
	if err != nil || d.ProposedAction == nil {
		t.Errorf("with every read answered: %v, %q", err, d.NoActionReason)
	}
}

func mustGather(t *testing.T, g *gather.Gatherer, ctx context.Context, tk ticket.Ticket) *diagnose.Context {
	t.Helper()
	c, err := g.Gather(ctx, tk)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
