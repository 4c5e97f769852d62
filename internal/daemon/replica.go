package daemon

import (
	"os"

	"github.com/tikvops/operator/internal/config"
)

// checkpointReplica names this daemon's own audit checkpoint file
// (auditkey.NewReplicaCheckpoint: audit.checkpoint.<name> in [audit]
// key-dir) when several processes may share the key directory: with [ha]
// enabled, or on a PostgreSQL database (replicas or several clusters'
// daemons on several hosts). The name is "host:listen" ([server] listen,
// else the API socket's path), so that replicas on one host and on several
// hosts never append to the same file, unless [ha] replica-name sets it.
// It returns "" (the shared
// audit.checkpoint, as before) for a daemon alone on a SQLite file.
// `operator audit verify` reads every checkpoint file of the directory.
func checkpointReplica(cfg config.Config) string {
	if !cfg.HA.Enabled && cfg.Database.URL == "" {
		return ""
	}
	if cfg.HA.ReplicaName != "" {
		return cfg.HA.ReplicaName // [ha] replica-name
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	where := cfg.Server.Listen
	if where == "" {
		where = cfg.SocketPath()
	}
	return host + ":" + where
}
