// Package cmdutil holds what every operator command shares: the Factory that
// hands commands their dependencies (streams, configuration, database, PD
// client), the errors the top level maps to exit codes, and output helpers
// (tables, JSON). It follows GitHub CLI's pkg/cmdutil.
package cmdutil

import (
	"context"
	"os"
	"os/user"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/daemon"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/tikv"
)

// Output formats of the global -o flag.
const (
	FormatTable = "table"
	FormatJSON  = "json"
)

// GlobalFlags are the root command's persistent flags. Commands may add
// their own overrides (operator run --interval) to Overrides before they
// call Factory.Config.
type GlobalFlags struct {
	// ConfigFile is --config (default $OPERATOR_CONFIG).
	ConfigFile string
	// PD is --pd, comma-separated PD URLs as pd-ctl's -u.
	PD string
	// Output is -o: FormatTable or FormatJSON.
	Output string
	// Overrides holds --db, --prometheus, --cacert, --cert, --key and the
	// per-command overrides.
	Overrides config.Overrides
}

// Factory gives commands their dependencies; tests replace its fields.
type Factory struct {
	IOStreams *iostreams.IOStreams
	Flags     *GlobalFlags
	// Getenv reads the environment (os.Getenv).
	Getenv func(string) string
	// Now is the clock (time.Now).
	Now func() time.Time
	// Version is the operator version printed by `operator version`.
	Version string
	// Config returns the effective configuration: defaults < TOML file
	// (--config or $OPERATOR_CONFIG) < environment < flags.
	Config func() (config.Config, error)
	// OpenStore opens the existing database named by cfg. It never creates
	// a file: a missing one is store.ErrNoDatabase (exit 5).
	OpenStore func(ctx context.Context, cfg config.Config) (*store.Store, error)
	// PDClient returns a PD client for cfg's endpoints and TLS files; it
	// does no I/O.
	PDClient func(cfg config.Config) (*pd.Client, error)
	// Catalog returns the TiKV action catalog acting through a PD client
	// for cfg; building it does no I/O.
	Catalog func(cfg config.Config) (*action.Catalog, error)
	// Daemon returns a client of the daemon's API: over its Unix socket
	// ([server] socket, identity from the kernel), or over [server] url
	// with a bearer token. Decisions (dry run, approve, reject) go only
	// through it: the daemon is the only writer of decisions.
	Daemon func(cfg config.Config) (*api.Client, error)
}

// New returns the production Factory: the process's streams and
// environment, the real clock, and SQLite/PD from the configuration.
func New(version string) *Factory {
	f := &Factory{
		IOStreams: iostreams.System(),
		Flags:     &GlobalFlags{Output: FormatTable},
		Getenv:    os.Getenv,
		Now:       time.Now,
		Version:   version,
	}
	f.Config = func() (config.Config, error) { return ResolveConfig(f) }
	f.OpenStore = func(ctx context.Context, cfg config.Config) (*store.Store, error) {
		return store.Open(ctx, cfg.Database.Target(), store.Options{})
	}
	f.PDClient = NewPDClient
	f.Catalog = func(cfg config.Config) (*action.Catalog, error) {
		c, err := f.PDClient(cfg)
		if err != nil {
			return nil, err
		}
		return tikv.NewCatalog(c), nil
	}
	f.Daemon = DaemonClient
	return f
}

// ResolveConfig resolves f's configuration from its flags and environment.
// A configuration that does not load or validate is a usage error (exit 2).
func ResolveConfig(f *Factory) (config.Config, error) {
	path := f.Flags.ConfigFile
	if path == "" {
		path = f.Getenv("OPERATOR_CONFIG")
	}
	o := f.Flags.Overrides
	if f.Flags.PD != "" {
		o.PD = config.SplitList(f.Flags.PD)
	}
	cfg, err := config.Resolve(path, f.Getenv, o)
	if err != nil {
		return cfg, FlagErrorWrap(err)
	}
	return cfg, nil
}

// NewPDClient builds a PD client for cfg exactly as the daemon does
// (endpoints, timeout, TLS files); a client that cannot be built (an
// unreadable TLS file) is a configuration error (exit 2).
func NewPDClient(cfg config.Config) (*pd.Client, error) {
	c, err := daemon.NewPDClient(cfg)
	if err != nil {
		return nil, FlagErrorWrap(err)
	}
	return c, nil
}

// DaemonClient returns the API client for cfg: [server] url with
// [server] token when a URL is set, else the Unix socket (SocketPath).
// Errors: no URL and the socket is disabled (a usage error).
func DaemonClient(cfg config.Config) (*api.Client, error) {
	if cfg.Server.URL != "" {
		return api.NewURLClient(cfg.Server.URL, cfg.Server.Token), nil
	}
	path := cfg.SocketPath()
	if path == "" {
		return nil, FlagErrorf("no way to reach the daemon: [server] socket is disabled and [server] url is not set (--server URL --token TOKEN)")
	}
	return api.NewSocketClient(path), nil
}

// WhoAmI is the default approver/rejecter name when --as is not given: the
// OS user, else $USER, else "unknown".
func WhoAmI(getenv func(string) string) string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if v := getenv("USER"); v != "" {
		return v
	}
	return "unknown"
}
