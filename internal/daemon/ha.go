package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/ha"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
)

// leaderParts are the parts only the leader runs ([ha] enabled): the
// monitor, the diagnosis runner and the executor. Each runs until its
// context ends; an error stops it.
type leaderParts map[string]func(ctx context.Context) error

// haState is this replica's view of the election, shared by the executor's
// fence, /healthz and the metrics.
type haState struct {
	cur     atomic.Pointer[ha.Leadership]
	leading prometheus.Gauge
	term    prometheus.Gauge
}

func newHAState(reg prometheus.Registerer) *haState {
	s := &haState{
		leading: prometheus.NewGauge(prometheus.GaugeOpts{Name: "operator_ha_leader",
			Help: "1 while this replica is the elected leader ([ha] enabled): it runs the monitor, diagnosis and executor; 0 otherwise."}),
		term: prometheus.NewGauge(prometheus.GaugeOpts{Name: "operator_ha_term",
			Help: "Leader term (election revision in PD's etcd) of this replica's current or last leadership; 0 before it led."}),
	}
	reg.MustRegister(s.leading, s.term)
	return s
}

// fence is the executor's Options.Fence: nil only while this replica leads
// the term carried by ctx (store.WithTerm) and its lease's local deadline
// has not passed.
func (s *haState) fence(ctx context.Context) error {
	l := s.cur.Load()
	if l == nil {
		return fmt.Errorf("%w: this replica does not lead", ha.ErrNotLeader)
	}
	if t := store.TermFrom(ctx); t != l.Term {
		return fmt.Errorf("%w: the work is of term %d, this replica leads term %d", ha.ErrNotLeader, t, l.Term)
	}
	return l.Valid()
}

// role returns "leader" or "follower" and the current term, for /healthz.
func (s *haState) role() (string, int64) {
	if l := s.cur.Load(); l != nil && l.Valid() == nil {
		return "leader", l.Term
	}
	return "follower", 0
}

// runHA binds the database to PD's cluster (the election is per cluster),
// then campaigns on PD's etcd until ctx ends; while this replica leads it
// runs parts with a context carrying its term (every store write of theirs
// is fenced by it) and stops them — an execution in flight finishes and
// records — when the leadership is lost. A part's error makes this replica
// step down and campaign again. Errors: the etcd client cannot be built
// (bad endpoints, TLS files); store.ErrWrongCluster.
func runHA(ctx context.Context, cfg config.Config, pdc *pd.Client, st *store.Store, gate *clusterGate, name string,
	state *haState, parts leaderParts, log *slog.Logger) error {
	for st.ClusterID() == "" {
		err := gate.ensure(ctx, pdc, st, log)
		if errors.Is(err, store.ErrWrongCluster) {
			return err
		}
		if err == nil {
			break
		}
		log.Warn("leader election waits for PD's cluster id", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(ha.RetryInterval):
		}
	}
	tlsCfg, err := pd.TLSConfigFromFiles(cfg.PD.CAPath, cfg.PD.CertPath, cfg.PD.KeyPath)
	if err != nil {
		return fmt.Errorf("ha: %w", err)
	}
	el, err := ha.New(ha.Options{Endpoints: cfg.PD.Endpoints, TLS: tlsCfg, ClusterID: st.ClusterID(), Name: name,
		LeaseTTL: cfg.HA.LeaseTTL.Duration, DialTimeout: cfg.PD.Timeout.Duration, Logger: log})
	if err != nil {
		return err
	}
	defer el.Close()
	return el.Run(ctx, func(lctx context.Context, l *ha.Leadership) {
		lctx = store.WithTerm(lctx, l.Term)
		// Record the term at once: from now on the previous leader's
		// writes are refused.
		if err := st.AdvanceTerm(lctx); err != nil {
			log.Error("elected, but the database refuses this term; stepping down", "term", l.Term, "err", err)
			return
		}
		state.cur.Store(l)
		state.leading.Set(1)
		state.term.Set(float64(l.Term))
		log.Info("leading: starting the monitor, diagnosis and executor", "term", l.Term, "lease_deadline", l.Deadline())
		pctx, stop := context.WithCancel(lctx)
		var wg sync.WaitGroup
		for part, run := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := run(pctx); err != nil && !errors.Is(err, context.Canceled) && pctx.Err() == nil {
					log.Error("leader part failed; stepping down", "part", part, "term", l.Term, "err", err)
					stop()
				}
			}()
		}
		<-pctx.Done()
		log.Info("leadership ending: stopping the monitor, diagnosis and executor", "term", l.Term, "reason", l.Err())
		wg.Wait()
		stop()
		state.cur.CompareAndSwap(l, nil)
		state.leading.Set(0)
		log.Info("leader parts stopped", "term", l.Term)
	})
}
