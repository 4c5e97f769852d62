// Package ha elects one leader among several `operator run` replicas that
// watch the same TiKV cluster, on the etcd that every PD embeds (PD's
// client URLs serve the etcd v3 API; TiDB elects its DDL owner there the
// same way). It uses go.etcd.io/etcd/client/v3/concurrency: a Session (an
// etcd lease with a TTL, kept alive), an Election under
// /tikvops/operator/<PD cluster id>/leader, Campaign, Observe and Resign.
//
// The leader's term is its election revision: the etcd create revision of
// its key under the election prefix. Each new leader's is higher (etcd
// revisions only grow and leaders follow their keys' creation order), so
// the database can refuse a deposed leader's writes (store.WithTerm).
//
// A leader gives up before its lease can expire on the others: Leadership
// keeps a local deadline, the send time of the last keepalive the etcd
// server answered plus half the lease TTL (the server cannot expire the
// lease earlier than that send time plus the TTL). Leadership.Valid is
// checked before every claim; when the deadline passes, the session ends,
// or another key leads the election, the leader's context is cancelled.
// See docs/ha.md.
package ha

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// Defaults for zero Options fields.
const (
	// DefaultLeaseTTL is the etcd lease TTL of a replica's session: after
	// a leader dies, another replica leads within it.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultDialTimeout bounds one connection attempt to PD's etcd.
	DefaultDialTimeout = 5 * time.Second
	// RetryInterval is the pause between campaigns after an error (etcd
	// unreachable, session lost).
	RetryInterval = time.Second
)

// ErrNotLeader is wrapped by Leadership.Valid once this replica may no
// longer act as the leader of its term.
var ErrNotLeader = errors.New("not the leader")

// Options configure New.
type Options struct {
	// Endpoints are PD's client URLs ([pd] endpoints: http:// or https://).
	Endpoints []string
	// TLS is the client TLS config for https:// endpoints (the [pd] TLS
	// files, pd.TLSConfigFromFiles); nil for http://.
	TLS *tls.Config
	// ClusterID is PD's cluster id (GET /pd/api/v1/cluster): one election
	// per PD cluster. Required.
	ClusterID string
	// Name identifies this replica: the election value, shown as the
	// leader's name ("host:pid" by default in the daemon). Required.
	Name string
	// LeaseTTL is the session's lease TTL (whole seconds; etcd may grant
	// more, its minimum); default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// DialTimeout bounds one connection attempt; default DefaultDialTimeout.
	DialTimeout time.Duration
	// Logger; default discards.
	Logger *slog.Logger
}

// Elector campaigns for leadership of one PD cluster's replicas. Create it
// with New, run it with Run; Close releases the etcd client.
type Elector struct {
	opts   Options
	prefix string
	cli    *clientv3.Client
	log    *slog.Logger

	cur atomic.Pointer[Leadership]
}

// Prefix returns the election prefix for PD cluster id clusterID.
func Prefix(clusterID string) string {
	return "/tikvops/operator/" + clusterID + "/leader"
}

// New builds the etcd client for PD's endpoints. It does not wait for a
// connection. Errors: no endpoint, no cluster id or name, a malformed URL.
func New(opts Options) (*Elector, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("ha: no PD endpoint (PD's client URLs serve its etcd)")
	}
	if opts.ClusterID == "" {
		return nil, errors.New("ha: missing input: PD cluster id (the election is per cluster)")
	}
	if opts.Name == "" {
		return nil, errors.New("ha: missing input: replica name")
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.LeaseTTL < time.Second {
		return nil, fmt.Errorf("ha: lease TTL %s is under etcd's 1 s granularity", opts.LeaseTTL)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	eps := make([]string, 0, len(opts.Endpoints))
	for _, e := range opts.Endpoints {
		u, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(e), "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("ha: PD endpoint %q is not an http:// or https:// URL", e)
		}
		eps = append(eps, u.Scheme+"://"+u.Host)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            eps,
		TLS:                  opts.TLS,
		DialTimeout:          opts.DialTimeout,
		DialKeepAliveTime:    opts.LeaseTTL / 3,
		DialKeepAliveTimeout: opts.LeaseTTL / 3,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("ha: etcd client for PD %s: %w", strings.Join(eps, ","), err)
	}
	return &Elector{opts: opts, prefix: Prefix(opts.ClusterID), cli: cli,
		log: opts.Logger.With("component", "ha", "replica", opts.Name)}, nil
}

// Close releases the etcd client. Call it after Run returned.
func (e *Elector) Close() error { return e.cli.Close() }

// Current returns this replica's leadership while it leads, else nil.
func (e *Elector) Current() *Leadership {
	l := e.cur.Load()
	if l == nil || l.Valid() != nil {
		return nil
	}
	return l
}

// Leader asks etcd who leads now: the leader's name and term. ok is false
// when nobody leads. Errors: etcd unreachable within ctx.
func (e *Elector) Leader(ctx context.Context) (name string, term int64, ok bool, err error) {
	resp, err := e.cli.Get(ctx, e.prefix+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", 0, false, fmt.Errorf("ha: read the leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0, false, nil
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].CreateRevision, true, nil
}

// Run campaigns until ctx ends. Each time this replica is elected it calls
// lead with a context that is cancelled when the leadership is lost (the
// lease's local deadline passed, the session ended, another key leads)
// and the Leadership of the term; lead must return once that context ends
// (after finishing work in flight). Then Run resigns when it still can and
// campaigns again. Errors from etcd are logged and retried every
// RetryInterval; Run returns nil when ctx ends.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context, l *Leadership)) error {
	for ctx.Err() == nil {
		if err := e.once(ctx, lead); err != nil && ctx.Err() == nil {
			e.log.Warn("leader election: retrying", "err", err, "retry_in", RetryInterval)
			select {
			case <-ctx.Done():
			case <-time.After(RetryInterval):
			}
		}
	}
	return nil
}

// once runs one session: grant, campaign, lead, resign.
func (e *Elector) once(ctx context.Context, lead func(ctx context.Context, l *Leadership)) error {
	sent := time.Now()
	gctx, cancel := context.WithTimeout(ctx, e.opts.DialTimeout+e.opts.LeaseTTL)
	grant, err := e.cli.Grant(gctx, int64((e.opts.LeaseTTL+time.Second-1)/time.Second))
	cancel()
	if err != nil {
		return fmt.Errorf("grant a lease on PD's etcd: %w", err)
	}
	ttl := time.Duration(grant.TTL) * time.Second
	sess, err := concurrency.NewSession(e.cli, concurrency.WithLease(grant.ID), concurrency.WithContext(ctx))
	if err != nil {
		e.revoke(grant.ID)
		return fmt.Errorf("session on PD's etcd: %w", err)
	}
	defer func() {
		sess.Close() // revokes the lease: followers campaign at once
	}()
	l := &Leadership{Name: e.opts.Name, TTL: ttl, done: make(chan struct{}), sess: sess}
	l.lastSent.Store(sent.UnixNano())

	// Keepalives whose send time is known: the local deadline's source.
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	go e.keepalive(kctx, grant.ID, l)

	el := concurrency.NewElection(sess, e.prefix)
	cctx, ccancel := context.WithCancel(ctx)
	go func() { // a session lost while campaigning ends the campaign
		select {
		case <-sess.Done():
		case <-cctx.Done():
		}
		ccancel()
	}()
	e.log.Info("campaigning for leadership", "prefix", e.prefix, "lease_ttl", ttl)
	err = el.Campaign(cctx, e.opts.Name)
	ccancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("campaign: %w", err)
	}
	l.Term = el.Rev()
	if err := l.Valid(); err != nil {
		_ = e.resign(el)
		return fmt.Errorf("elected with term %d but %w", l.Term, err)
	}

	lctx, lcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		reason := e.watch(lctx, el, l)
		l.lose(reason)
		lcancel()
	}()
	e.cur.Store(l)
	e.log.Info("elected leader", "term", l.Term, "lease_ttl", ttl)
	lead(lctx, l)
	e.cur.CompareAndSwap(l, nil)
	l.lose(errors.New("stepped down"))
	lcancel()
	wg.Wait()
	if err := e.resign(el); err != nil {
		e.log.Warn("resign", "term", l.Term, "err", err)
	}
	e.log.Info("leadership ended", "term", l.Term, "reason", l.Err())
	return nil
}

// watch returns why the leadership of l ends: ctx ended, the session
// ended, the local deadline passed, or another key leads.
func (e *Elector) watch(ctx context.Context, el *concurrency.Election, l *Leadership) error {
	obs := el.Observe(ctx)
	for {
		wait := time.Until(l.deadline())
		if wait <= 0 {
			return fmt.Errorf("no keepalive answered for %s (half the lease TTL): the lease may expire on the other replicas", l.TTL/2)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return errors.New("stepped down")
		case <-l.sess.Done():
			timer.Stop()
			return errors.New("etcd session ended (lease expired or PD's etcd unreachable)")
		case <-timer.C:
		case resp, ok := <-obs:
			timer.Stop()
			if !ok {
				if ctx.Err() != nil {
					return errors.New("stepped down")
				}
				obs = nil // watch broken (etcd unreachable): the deadline decides
				continue
			}
			if len(resp.Kvs) > 0 && resp.Kvs[0].CreateRevision != l.Term {
				return fmt.Errorf("another replica leads (%s, term %d)", resp.Kvs[0].Value, resp.Kvs[0].CreateRevision)
			}
		}
	}
}

// keepalive renews the lease every TTL/4 with KeepAliveOnce and records
// the send time of each answered renewal (Leadership's local deadline).
// The session's own KeepAlive also renews it; this one measures.
func (e *Elector) keepalive(ctx context.Context, id clientv3.LeaseID, l *Leadership) {
	every := l.TTL / 4
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		kctx, cancel := context.WithTimeout(ctx, every)
		resp, err := e.cli.KeepAliveOnce(kctx, id)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("lease keepalive failed", "err", err, "deadline", l.deadline())
			}
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				l.lose(errors.New("lease expired on PD's etcd"))
			}
			continue
		}
		if resp.TTL > 0 {
			l.lastSent.Store(sent.UnixNano())
		}
	}
}

// resign deletes this replica's leader key (if it still holds it) so a
// follower leads at once.
func (e *Elector) resign(el *concurrency.Election) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.DialTimeout)
	defer cancel()
	return el.Resign(ctx)
}

func (e *Elector) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.DialTimeout)
	defer cancel()
	_, _ = e.cli.Revoke(ctx, id)
}

// Leadership is one term of this replica as leader.
type Leadership struct {
	// Term is the election revision (the leader key's create revision in
	// PD's etcd); the database fences writes by it.
	Term int64
	// Name is this replica's name.
	Name string
	// TTL is the lease TTL etcd granted.
	TTL time.Duration

	sess     *concurrency.Session
	lastSent atomic.Int64 // unix nanoseconds: send time of the last answered keepalive
	mu       sync.Mutex
	err      error
	done     chan struct{}
}

// deadline is the local end of the leadership: last answered keepalive's
// send time + TTL/2.
func (l *Leadership) deadline() time.Time {
	return time.Unix(0, l.lastSent.Load()).Add(l.TTL / 2)
}

// Deadline returns the time until which this replica may act as leader
// unless a keepalive is answered meanwhile.
func (l *Leadership) Deadline() time.Time { return l.deadline() }

// Valid returns nil while this replica may act as the leader of Term: the
// leadership was not lost, the session is alive, and the local deadline
// has not passed. Otherwise an error wrapping ErrNotLeader says why. Check
// it right before every claim and before sending to PD.
func (l *Leadership) Valid() error {
	if l == nil {
		return fmt.Errorf("%w: not elected", ErrNotLeader)
	}
	select {
	case <-l.done:
		return fmt.Errorf("%w (term %d): %v", ErrNotLeader, l.Term, l.Err())
	default:
	}
	select {
	case <-l.sess.Done():
		return fmt.Errorf("%w (term %d): etcd session ended", ErrNotLeader, l.Term)
	default:
	}
	if d := l.deadline(); !time.Now().Before(d) {
		return fmt.Errorf("%w (term %d): no keepalive answered since %s (local deadline %s passed)",
			ErrNotLeader, l.Term, time.Unix(0, l.lastSent.Load()).UTC().Format(time.RFC3339Nano), d.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// Done is closed when the leadership is lost.
func (l *Leadership) Done() <-chan struct{} { return l.done }

// Err says why the leadership ended (nil while it lasts).
func (l *Leadership) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *Leadership) lose(reason error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	l.err = reason
	close(l.done)
}
