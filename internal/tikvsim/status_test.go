package tikvsim_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/tikvsim"
)

// scrapeCPU reads tikv_thread_cpu_seconds_total from addr's /metrics:
// CPU seconds by thread name.
func scrapeCPU(t *testing.T, addr string) (map[string]float64, int) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	fam := fams["tikv_thread_cpu_seconds_total"]
	if fam == nil {
		t.Fatalf("no tikv_thread_cpu_seconds_total in %v", fams)
	}
	out := map[string]float64{}
	for _, m := range fam.GetMetric() {
		var name, tid string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "name":
				name = l.GetValue()
			case "tid":
				tid = l.GetValue()
			}
		}
		if name == "" || tid == "" {
			t.Errorf("series without name or tid: %v", m)
		}
		out[name] = m.GetCounter().GetValue()
	}
	return out, resp.StatusCode
}

// TestStatusServerCPU: with StatusServer each store registers a real
// status_address with PD, serving TiKV's thread CPU counters, whose
// write-path threads grow at the SetCPU rate.
func TestStatusServerCPU(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 3, StatusServers: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := c.Sim.StoreIDs()
	pdc, err := pd.New([]string{c.PDURL})
	if err != nil {
		t.Fatal(err)
	}
	stores, err := pdc.Stores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[uint64]string{}
	for _, s := range stores {
		byID[s.Store.ID] = s.Store.StatusAddress
	}
	for _, id := range ids {
		addr, err := c.Sim.StatusAddress(id)
		if err != nil || addr != byID[id] || addr == "" {
			t.Fatalf("store %d: status address %q (%v), PD has %q", id, addr, err, byID[id])
		}
	}
	addr := byID[ids[0]]
	if err := c.Sim.SetCPU(ids[0], 4); err != nil {
		t.Fatal(err)
	}
	write := func(m map[string]float64) float64 {
		return m["raftstore_"+strconv.FormatUint(ids[0], 10)+"_0"] + m["apply_0"] + m["sched_worker_pool_0"] + m["grpc_server_0"]
	}
	m1, _ := scrapeCPU(t, addr)
	t1 := time.Now()
	time.Sleep(300 * time.Millisecond)
	m2, _ := scrapeCPU(t, addr)
	el := time.Since(t1).Seconds()
	// 4 cores over el seconds, within the scrape's own latency.
	if got := write(m2) - write(m1); got < 4*0.2 || got > 4*(el+0.2) {
		t.Errorf("write-path CPU grew %.3f s in %.3f s at 4 cores", got, el)
	}
	if other := m2["pd_worker"]; other <= 0 || other > 1 {
		t.Errorf("pd_worker = %v", other)
	}
	// A stopped store serves nothing.
	if err := c.Sim.StopStore(ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, code := scrapeCPU(t, addr); code != http.StatusServiceUnavailable {
		t.Errorf("stopped store: /metrics %d", code)
	}
	if err := c.Sim.SetCPU(ids[1], -1); !errors.Is(err, tikvsim.ErrInvalidArgument) {
		t.Errorf("SetCPU(-1) = %v", err)
	}
	if err := c.Sim.SetCPU(999, 1); !errors.Is(err, tikvsim.ErrStoreNotFound) {
		t.Errorf("SetCPU(999) = %v", err)
	}
}
