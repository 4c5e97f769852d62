package ha_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/ha"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
)

// replica is one in-process elector and what it saw.
type replica struct {
	el     *ha.Elector
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	leading *ha.Leadership
	terms   []int64
}

func (r *replica) current() *ha.Leadership {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leading
}

func startReplica(t *testing.T, endpoints []string, cluster, name string, ttl time.Duration) *replica {
	t.Helper()
	el, err := ha.New(ha.Options{Endpoints: endpoints, ClusterID: cluster, Name: name, LeaseTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{el: el, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = el.Run(ctx, func(lctx context.Context, l *ha.Leadership) {
			r.mu.Lock()
			r.leading = l
			r.terms = append(r.terms, l.Term)
			r.mu.Unlock()
			<-lctx.Done()
			r.mu.Lock()
			r.leading = nil
			r.mu.Unlock()
		})
	}()
	t.Cleanup(func() { r.stop(); el.Close() })
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := testcluster.WaitFor(ctx, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// Three replicas on real PD's etcd: exactly one leads; when it steps down
// another leads with a higher term; when PD (its etcd) stops, nobody may
// act as leader once half the lease TTL passed without a keepalive.
func TestElectionOnPDEtcd(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	ctx := context.Background()
	pdc, err := pd.New([]string{c.PDURL})
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := pdc.ClusterID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 3 * time.Second
	var rs []*replica
	for i := 0; i < 3; i++ {
		rs = append(rs, startReplica(t, []string{c.PDURL}, cluster, fmt.Sprintf("r%d", i), ttl))
	}
	leaders := func() []int {
		var out []int
		for i, r := range rs {
			if l := r.current(); l != nil && l.Valid() == nil {
				out = append(out, i)
			}
		}
		return out
	}
	waitFor(t, 20*time.Second, "a leader", func() bool { return len(leaders()) == 1 })
	// Stays exactly one for a while (several keepalive rounds).
	for i := 0; i < 20; i++ {
		if n := leaders(); len(n) != 1 {
			t.Fatalf("leaders = %v, want exactly one", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	first := leaders()[0]
	l1 := rs[first].current()
	name, term, ok, err := rs[(first+1)%3].el.Leader(ctx)
	if err != nil || !ok || name != fmt.Sprintf("r%d", first) || term != l1.Term {
		t.Fatalf("Leader() from a follower = %q %d %v %v; want r%d term %d", name, term, ok, err, first, l1.Term)
	}

	// The leader stops (resigns): another leads with a higher term.
	rs[first].stop()
	if l1.Valid() == nil {
		t.Fatal("a stopped leader's leadership is still valid")
	}
	waitFor(t, 2*ttl+5*time.Second, "a new leader", func() bool { return len(leaders()) == 1 })
	second := leaders()[0]
	l2 := rs[second].current()
	if second == first || l2.Term <= l1.Term {
		t.Fatalf("new leader r%d term %d after r%d term %d", second, l2.Term, first, l1.Term)
	}

	// PD's etcd unreachable: the leader gives up at its local deadline,
	// and nobody else leads.
	stopped := time.Now()
	if err := c.StopPD(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ttl+5*time.Second, "the leader to give up", func() bool { return l2.Valid() != nil })
	t.Logf("leader gave up %s after PD stopped (lease TTL %s): %v", time.Since(stopped).Round(10*time.Millisecond), l2.TTL, l2.Valid())
	if !errors.Is(l2.Valid(), ha.ErrNotLeader) {
		t.Errorf("Valid = %v, want ErrNotLeader", l2.Valid())
	}
	time.Sleep(ttl)
	if n := leaders(); len(n) != 0 {
		t.Errorf("leaders while PD is down = %v", n)
	}
	// PD back: one leader again.
	if err := c.StartPD(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a leader after PD restarted", func() bool { return len(leaders()) == 1 })
}
