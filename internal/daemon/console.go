package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/auditkey"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/console"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
)

// withConsole returns extra (the routes mounted before /api/v1/) plus the
// web console under [console] prefix when [console] enabled; extra
// unchanged otherwise. The console shares the API's identities: tokens
// for its log-in form and the trusted auth-proxy header through
// api.Server.Identify.
func withConsole(extra func(*http.ServeMux), cfg config.Config, st *store.Store, ex *executor.Executor, cat *action.Catalog,
	pdc *pd.Client, apiSrv *api.Server, keyDir string, log *slog.Logger) (func(*http.ServeMux), error) {
	if !cfg.Console.Enabled {
		return extra, nil
	}
	if err := cfg.Console.Validate(); err != nil {
		return nil, err
	}
	tokens, err := auth.NewTokens(cfg.Auth.Tokens)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	policy := PolicyOf(cfg)
	o := console.Options{
		Store: st, Decider: ex, Catalog: cat, PD: pdc, Tokens: tokens,
		Verify:     auditVerifier(st, keyDir, log),
		Required:   policy.RequiredFor,
		Prefix:     cfg.Console.PrefixOrDefault(),
		SessionTTL: cfg.Console.SessionTTLOrDefault(),
		Logger:     log.With("component", "console"),
	}
	if cfg.Auth.ProxyUserHeader != "" {
		o.Identify = apiSrv.Identify
	}
	srv, err := console.New(o)
	if err != nil {
		return nil, err
	}
	log.Info("serving the web console", "prefix", srv.Prefix()+"/", "listen", cfg.Server.Listen)
	return func(mux *http.ServeMux) {
		if extra != nil {
			extra(mux)
		}
		h := srv.Handler()
		mux.Handle(srv.Prefix()+"/", h)
		mux.Handle(srv.Prefix(), h)
	}, nil
}

// auditVerifier runs the audit chain verification with the daemon's key
// and checkpoint (keyDir); a broken chain is also queued as a
// notification.
func auditVerifier(st *store.Store, keyDir string, log *slog.Logger) func(ctx context.Context) (store.VerifyReport, error) {
	return func(ctx context.Context) (store.VerifyReport, error) {
		pub, err := auditkey.LoadPublic(keyDir)
		if err != nil {
			return store.VerifyReport{}, err
		}
		rep, err := st.VerifyWith(ctx, store.VerifyOptions{PublicKey: pub, KeyDir: keyDir})
		if err == nil && !rep.OK {
			enqueueVerifyFailure(ctx, st, rep, log)
		}
		return rep, err
	}
}
