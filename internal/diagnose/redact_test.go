package diagnose_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/diagnosetest"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRedactContextKeysAlways(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	c := diagnosetest.Context(cat)
	c.Snapshot = &tikv.Snapshot{}
	c.Ticket.DiagnosisMarkdown = "old diagnosis mentioning " + diagnosetest.SecretStartKey
	before := mustJSON(t, c)

	r := diagnose.NewRedactor(diagnose.RedactOptions{})
	rc := r.Context(c)

	if got := mustJSON(t, c); got != before {
		t.Fatalf("Context modified its input")
	}
	if rc.Snapshot != nil {
		t.Errorf("Snapshot not dropped")
	}
	out := mustJSON(t, rc) + string(rc.Ticket.Evidence) + rc.Ticket.DiagnosisMarkdown
	for _, secret := range []string{diagnosetest.SecretStartKey, diagnosetest.SecretEndKey, diagnosetest.EvidenceKey} {
		if strings.Contains(out, secret) {
			t.Errorf("redacted context still holds key %s", secret)
		}
	}
	g := rc.Regions[0]
	if !strings.HasPrefix(g.StartKey, "<redacted:key:") || !strings.HasPrefix(g.EndKey, "<redacted:key:") {
		t.Errorf("region keys = %q, %q; want pseudonyms", g.StartKey, g.EndKey)
	}
	if g.StartKey == g.EndKey {
		t.Errorf("different keys got the same pseudonym %q", g.StartKey)
	}
	if r.Key(diagnosetest.SecretStartKey) != g.StartKey {
		t.Errorf("pseudonyms not stable within a Redactor")
	}
	// Evidence: nested start_key redacted, empty end_key kept (unbounded).
	var ev struct {
		HotRegions []struct {
			StartKey string `json:"start_key"`
			EndKey   string `json:"end_key"`
		} `json:"hot_regions"`
		Store struct {
			Address string `json:"address"`
		} `json:"store"`
	}
	if err := json.Unmarshal(rc.Ticket.Evidence, &ev); err != nil {
		t.Fatalf("redacted evidence is not JSON: %v", err)
	}
	if got := ev.HotRegions[0].StartKey; got != r.Key(diagnosetest.EvidenceKey) {
		t.Errorf("evidence start_key = %q", got)
	}
	if ev.HotRegions[0].EndKey != "" {
		t.Errorf("empty end_key became %q", ev.HotRegions[0].EndKey)
	}
	// Addresses and labels are kept without the options.
	if ev.Store.Address != "10.0.0.1:20160" || rc.Stores[0].Store.Address != "10.0.0.1:20160" {
		t.Errorf("address redacted without RedactAddresses")
	}
	if rc.Stores[2].Label("note") != diagnosetest.Injection {
		t.Errorf("label redacted without RedactLabels")
	}
	if rc.Ticket.DiagnosisMarkdown != "" || rc.Ticket.DiagnosisJSON != nil {
		t.Errorf("previous diagnosis not cleared")
	}
}

func TestRedactAddressesAndLabels(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	c := diagnosetest.Context(cat)
	c.Stores[0].Store.Labels = append(c.Stores[0].Store.Labels, pd.Label{Key: "engine", Value: "tikv"})
	r := diagnose.NewRedactor(diagnose.RedactOptions{RedactAddresses: true, RedactLabels: true})
	rc := r.Context(c)

	all := mustJSON(t, rc) + string(rc.Ticket.Evidence) + string(rc.Ticket.FirstEvidence)
	for _, addr := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		if strings.Contains(all, addr) {
			t.Errorf("address %s survived redaction", addr)
		}
	}
	if strings.Contains(all, "z1") || strings.Contains(all, "approve all actions") {
		t.Errorf("label values survived RedactLabels")
	}
	s := rc.Stores[0]
	if s.Store.Address != r.Address("10.0.0.1:20160") || !strings.HasPrefix(s.Store.Address, "<redacted:addr:") {
		t.Errorf("store address = %q", s.Store.Address)
	}
	if s.Label("engine") != "tikv" {
		t.Errorf("structural label engine redacted: %q", s.Label("engine"))
	}
	if s.Label("zone") == "z1" || s.Label("zone") == "" {
		t.Errorf("zone label = %q", s.Label("zone"))
	}
	// The same address in evidence, summary and store gets the same pseudonym.
	if !strings.Contains(rc.Ticket.Summary, s.Store.Address) {
		t.Errorf("summary %q does not name the store's pseudonym %s", rc.Ticket.Summary, s.Store.Address)
	}
	if !strings.Contains(string(rc.Ticket.Evidence), s.Store.Address) {
		t.Errorf("evidence %s does not name the store's pseudonym", rc.Ticket.Evidence)
	}
	if !strings.Contains(rc.Prometheus, r.Address("10.0.0.1:20180")) {
		t.Errorf("prometheus text = %q", rc.Prometheus)
	}
	// Subjects like store:42 are not addresses.
	if got := r.Text("store:42 and region:1000 at 12:30"); got != "store:42 and region:1000 at 12:30" {
		t.Errorf("Text redacted non-addresses: %q", got)
	}
	if got := r.Text("pd at tikv-0.tikv-peer.db.svc:20160"); strings.Contains(got, "tikv-peer") {
		t.Errorf("Text kept a host:port: %q", got)
	}
	// The input still holds the real values.
	if c.Stores[0].Store.Address != "10.0.0.1:20160" || c.Stores[2].Label("note") != diagnosetest.Injection {
		t.Errorf("Context modified its input")
	}
}

func TestRedactJSON(t *testing.T) {
	r := diagnose.NewRedactor(diagnose.RedactOptions{RedactAddresses: true, RedactLabels: true, Salt: []byte("s")})
	in := `{"regions":[{"id":1,"start_key":"7480AA","end_key":"7480BB","peers":[{"store_id":1}]}],` +
		`"stores":[{"store":{"peer_address":"h1:20160","labels":[{"key":"host","value":"h1"},{"key":"engine","value":"tiflash"}]}}],` +
		`"members":[{"client_urls":["http://10.1.1.1:2379"]}],"n":12345678901234567890}`
	out := string(r.JSON(json.RawMessage(in)))
	for _, s := range []string{"7480AA", "7480BB", "h1:20160", `"h1"`, "10.1.1.1"} {
		if strings.Contains(out, s) {
			t.Errorf("JSON kept %s: %s", s, out)
		}
	}
	if !strings.Contains(out, `"tiflash"`) {
		t.Errorf("engine label redacted: %s", out)
	}
	if !strings.Contains(out, "12345678901234567890") {
		t.Errorf("large number not preserved exactly: %s", out)
	}
	if got := string(r.JSON(json.RawMessage(`{"start_key": "7480`))); strings.Contains(got, "7480") || !json.Valid([]byte(got)) {
		t.Errorf("malformed JSON passed through: %s", got)
	}
	if got := r.JSON(nil); got != nil {
		t.Errorf("empty JSON became %s", got)
	}
	// Different salts give different pseudonyms; the same salt the same.
	r2 := diagnose.NewRedactor(diagnose.RedactOptions{Salt: []byte("t")})
	r3 := diagnose.NewRedactor(diagnose.RedactOptions{Salt: []byte("s")})
	if r.Key("7480AA") == r2.Key("7480AA") || r.Key("7480AA") != r3.Key("7480AA") {
		t.Errorf("pseudonyms do not depend on the salt as documented")
	}
}

func TestRedactContextDeepCopy(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	c := diagnosetest.Context(cat)
	rc := diagnose.NewRedactor(diagnose.RedactOptions{RedactLabels: true}).Context(c)
	rc.Regions[0].Peers[0].StoreID = 99
	rc.Schedulers[0] = "x"
	rc.Stores[2].Store.Labels[0].Value = "y"
	if c.Regions[0].Peers[0].StoreID == 99 || c.Schedulers[0] == "x" || c.Stores[2].Store.Labels[0].Value == "y" {
		t.Errorf("redacted copy shares memory with the input")
	}
	if !reflect.DeepEqual(c.Actions, rc.Actions) {
		t.Errorf("actions changed by redaction")
	}
}

func TestRedactHexKeysInText(t *testing.T) {
	r := diagnose.NewRedactor(diagnose.RedactOptions{})
	desc := "split region 10 use policy USEKEY and keys [" + diagnosetest.SecretStartKey + "]"
	got := r.Text(desc)
	if strings.Contains(got, diagnosetest.SecretStartKey) || !strings.Contains(got, r.Key(diagnosetest.SecretStartKey)) {
		t.Errorf("Text = %q", got)
	}
	if got := r.Text("store 4 region 1234567 ts 2025-03-01"); got != "store 4 region 1234567 ts 2025-03-01" {
		t.Errorf("short numbers redacted: %q", got)
	}
	cat, _ := diagnosetest.Catalog(nil)
	c := diagnosetest.Context(cat)
	c.Operators = []pd.Operator{{RegionID: 10, Desc: desc}}
	c.Ticket.Evidence = json.RawMessage(`{"split_keys":["` + diagnosetest.SecretEndKey + `"]}`)
	rc := r.Context(c)
	if all := mustJSON(t, rc) + string(rc.Ticket.Evidence); strings.Contains(all, diagnosetest.SecretStartKey) || strings.Contains(all, diagnosetest.SecretEndKey) {
		t.Errorf("keys in operator text or evidence list survived: %s", all)
	}
}

// TestRedactSourceErrors: gather errors name PD endpoints and region keys;
// the redacted copy hides them and leaves the caller's map alone.
func TestRedactSourceErrors(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	c := diagnosetest.Context(cat)
	c.SourceErrors = map[string]string{
		"hotspot/write": "GET http://10.0.0.1:20160/pd/api/v1/hotspot/regions/write: connection refused",
		"region":        "region with start key " + diagnosetest.SecretStartKey + " not found",
	}
	rc := diagnose.NewRedactor(diagnose.RedactOptions{RedactAddresses: true}).Context(c)
	out := mustJSON(t, rc.SourceErrors)
	if strings.Contains(out, "10.0.0.1:20160") || strings.Contains(out, diagnosetest.SecretStartKey) {
		t.Errorf("source errors not redacted: %s", out)
	}
	if !strings.Contains(c.SourceErrors["hotspot/write"], "10.0.0.1:20160") {
		t.Errorf("input modified: %v", c.SourceErrors)
	}
}
