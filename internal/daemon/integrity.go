package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
)

// clusterGate binds the store handle to PD's cluster id (GET
// /pd/api/v1/cluster; store.BindCluster) under the configured [cluster]
// name in the monitor's first cycle, before the cycle reads its memory or
// writes anything; until then the executor and the diagnosis runner take
// nothing (their reads are scoped to the bound cluster). A name bound to
// another cluster stops the daemon (onWrong).
type clusterGate struct {
	mu sync.Mutex
	// name is the configured [cluster] name ("" for none; store.BindCluster).
	name string
	// onWrong is called with store.ErrWrongCluster: the daemon stops.
	onWrong func(error)
}

func (g *clusterGate) ensure(ctx context.Context, pdc *pd.Client, st *store.Store, log *slog.Logger) error {
	if st.ClusterID() != "" {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if st.ClusterID() != "" {
		return nil
	}
	id, err := pdc.ClusterID(ctx)
	if err != nil {
		return err
	}
	if err := st.BindCluster(ctx, id, g.name, time.Now()); err != nil {
		if errors.Is(err, store.ErrWrongCluster) {
			log.Error("refusing to watch this cluster with this database", "err", err)
			if g.onWrong != nil {
				g.onWrong(err)
			}
		}
		return err
	}
	log.Info("database bound to PD cluster", "cluster_id", id, "cluster", st.ClusterName())
	return nil
}

// PolicyOf returns the executor's approval policy from [actions].
func PolicyOf(cfg config.Config) executor.Policy {
	req := map[action.Risk]int{}
	for k, v := range executor.DefaultRequired {
		req[k] = v
	}
	for k, v := range cfg.Actions.ApprovalsRequired {
		req[action.Risk(k)] = v
	}
	return executor.Policy{ApprovalTTL: cfg.Actions.ApprovalTTL.Duration, Required: req}
}

// newAPI builds the API server from [auth] and the audit key directory.
func newAPI(cfg config.Config, st *store.Store, ex *executor.Executor, keyDir, version string, log *slog.Logger) (*api.Server, error) {
	tokens, err := auth.NewTokens(cfg.Auth.Tokens)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	var trusted []netip.Prefix
	for _, c := range cfg.Auth.ProxyTrusted {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("auth proxy-trusted %q: %w", c, err)
		}
		trusted = append(trusted, p)
	}
	return api.New(api.Options{
		Store: st, Executor: ex, Tokens: tokens,
		ProxyUserHeader: cfg.Auth.ProxyUserHeader, ProxyTrusted: trusted, ProxyRoles: cfg.Auth.ProxyRoles,
		Verify:  auditVerifier(st, keyDir, log),
		Windows: api.MaintenanceSilences(cfg.Maintenance),
		Version: version, Logger: log.With("component", "api"),
	}), nil
}

// listenUnix listens on a Unix socket at path (mode 0666: the kernel's
// peer credentials, not the file mode, decide who may do what), removing a
// stale socket file left by a daemon that died. A live daemon on the same
// socket is an error.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("api socket %s: another operator daemon is serving it", path)
		}
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	return ln, nil
}
