package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Several TiKV clusters in one database (issue 14; docs/ha.md, "Several
// clusters").
//
// Each daemon watches one cluster and binds its store handle to it
// (BindCluster): PD's cluster id, under a configured name. A name is bound
// to one PD cluster id forever; a new name with a new id is added. Every
// row the daemon's parts write is tagged with the cluster id, and every
// read they make is scoped to it: ticket dedup keys, the monitor's memory,
// diagnosis requests, the executor's claims and recovery, scheduled
// reverts, the notification outbox, silences and leader terms. People's
// reads (CLI, API, console) see every cluster unless they filter by one.
// The audit trail stays one hash chain per database; each record carries
// its cluster id.

// DefaultClusterName is the name a cluster is bound under when the
// configuration names none ([cluster] name empty), and the name a
// database made before migration 9 (one cluster, no name) gives its
// cluster.
const DefaultClusterName = "default"

// schemaV9 scopes the monitor's memory, ticket dedup and the outbox by
// cluster, and binds a name to one cluster for good:
//
//   - clusters.name is unique; the one cluster of an older database is
//     named "default".
//   - tickets_active_key is one non-resolved ticket per (cluster, key):
//     the same invariant and subject on two clusters are two tickets.
//   - monitor_alerts and monitor_state are keyed by (cluster_id, key|name);
//     existing rows belong to the database's one cluster ("" when it was
//     never bound: BindCluster adopts them).
//   - outbox.cluster_id: each daemon routes and delivers its own
//     cluster's events (and the untagged ones).
//   - indexes leading with cluster_id for the scoped reads.
//
// Portable SQL only (no SQLite-only functions): the PostgreSQL migrations
// mirror it.
const schemaV9 = `
UPDATE clusters SET name = 'default' WHERE name = '';
CREATE UNIQUE INDEX clusters_name ON clusters(name);

DROP INDEX tickets_active_key;
CREATE UNIQUE INDEX tickets_active_key ON tickets(cluster_id, key) WHERE status <> 'resolved';
CREATE INDEX tickets_cluster_status_id ON tickets(cluster_id, status, id);
CREATE INDEX action_proposals_cluster_status_id ON action_proposals(cluster_id, status, id);
CREATE INDEX action_records_cluster_id ON action_records(cluster_id, id);

CREATE TABLE monitor_alerts_v9 (
	cluster_id TEXT    NOT NULL DEFAULT '',  -- PD cluster id, decimal
	key        TEXT    NOT NULL,             -- invariant/subject
	invariant  TEXT    NOT NULL,
	active_at  TEXT    NOT NULL,
	firing     INTEGER NOT NULL DEFAULT 0,
	updated_at TEXT    NOT NULL,
	PRIMARY KEY (cluster_id, key)
);
INSERT INTO monitor_alerts_v9 (cluster_id, key, invariant, active_at, firing, updated_at)
SELECT coalesce((SELECT min(id) FROM clusters), ''), key, invariant, active_at, firing, updated_at FROM monitor_alerts;
DROP TABLE monitor_alerts;
ALTER TABLE monitor_alerts_v9 RENAME TO monitor_alerts;

CREATE TABLE monitor_state_v9 (
	cluster_id TEXT NOT NULL DEFAULT '',
	name       TEXT NOT NULL,
	state      TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (cluster_id, name)
);
INSERT INTO monitor_state_v9 (cluster_id, name, state, updated_at)
SELECT coalesce((SELECT min(id) FROM clusters), ''), name, state, updated_at FROM monitor_state;
DROP TABLE monitor_state;
ALTER TABLE monitor_state_v9 RENAME TO monitor_state;

ALTER TABLE outbox ADD COLUMN cluster_id TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_cluster_routed ON outbox(cluster_id, routed, id);
`

// Cluster is one PD cluster the database holds.
type Cluster struct {
	// ID is PD's cluster id (GET /pd/api/v1/cluster, field "id"), decimal.
	ID string `json:"id"`
	// Name is the configured name ([cluster] name) it is bound under.
	Name      string    `json:"name"`
	FirstSeen time.Time `json:"first_seen"`
}

// ClusterList returns the clusters the database holds, oldest first
// (none before a daemon's first contact with PD).
func (s *Store) ClusterList(ctx context.Context) ([]Cluster, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, first_seen FROM clusters ORDER BY first_seen, id`)
	if err != nil {
		return nil, fmt.Errorf("read clusters: %w", err)
	}
	defer rows.Close()
	var out []Cluster
	for rows.Next() {
		var (
			c  Cluster
			fs timeCol
		)
		if err := rows.Scan(&c.ID, &c.Name, &fs); err != nil {
			return nil, fmt.Errorf("read clusters: %w", err)
		}
		c.FirstSeen = fs.t
		out = append(out, c)
	}
	return out, rows.Err()
}

// ClusterNamed returns the PD cluster id bound to name. Errors: ErrNotFound
// (wrapped, listing the names the database holds).
func (s *Store) ClusterNamed(ctx context.Context, name string) (string, error) {
	cs, err := s.ClusterList(ctx)
	if err != nil {
		return "", err
	}
	var names []string
	for _, c := range cs {
		if c.Name == name {
			return c.ID, nil
		}
		names = append(names, c.Name)
	}
	if len(names) == 0 {
		return "", fmt.Errorf("cluster %q: %w: the database holds no cluster yet", name, ErrNotFound)
	}
	return "", fmt.Errorf("cluster %q: %w: the database holds %s", name, ErrNotFound, strings.Join(names, ", "))
}

// ClusterName returns the name this handle's cluster is bound under ("" before BindCluster).
func (s *Store) ClusterName() string {
	s.imu.RLock()
	defer s.imu.RUnlock()
	return s.clusterNm
}

// bindClusterTx is BindCluster's transaction: see BindCluster for the rules.
// It returns the name the cluster is bound under.
func (s *Store) bindClusterTx(ctx context.Context, tx *sql.Tx, id, name string, now time.Time) (string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, name FROM clusters ORDER BY first_seen, id`)
	if err != nil {
		return "", err
	}
	var (
		byName, byID = map[string]string{}, map[string]string{}
		n            int
	)
	for rows.Next() {
		var cid, cname string
		if err := rows.Scan(&cid, &cname); err != nil {
			rows.Close()
			return "", err
		}
		byName[cname], byID[cid] = cid, cname
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}
	if name == "" {
		// No configured name: the name the id is bound under, the default
		// name for the first cluster, and never a silent second cluster
		// (a daemon pointed at the wrong PD by mistake).
		switch had, ok := byID[id]; {
		case ok:
			return had, nil
		case n == 0:
			name = DefaultClusterName
		default:
			var held []string
			for cname, cid := range byName {
				held = append(held, fmt.Sprintf("%q (PD cluster %s)", cname, cid))
			}
			sort.Strings(held)
			return "", fmt.Errorf("%w: %s holds %s, but this daemon's PD answers with cluster id %s; point --pd at that cluster's PD, or set [cluster] name to add this cluster to the database",
				ErrWrongCluster, s.path, strings.Join(held, ", "), id)
		}
	}
	if bound, ok := byName[name]; ok {
		if bound == id {
			return name, nil
		}
		return "", fmt.Errorf("%w: in %s the cluster name %q is bound to PD cluster %s, but this daemon's PD answers with cluster id %s; point --pd at %q's PD, or set [cluster] name to another name to add this cluster to the database",
			ErrWrongCluster, s.path, name, bound, id, name)
	}
	if had, ok := byID[id]; ok {
		if had != DefaultClusterName {
			return "", fmt.Errorf("%w: in %s PD cluster %s is bound to the name %q, not %q; set [cluster] name = %q",
				ErrWrongCluster, s.path, id, had, name, had)
		}
		// The never-named cluster of an older database takes its name.
		if _, err := tx.ExecContext(ctx, `UPDATE clusters SET name = ? WHERE id = ?`, name, id); err != nil {
			return "", err
		}
		s.log.Info("cluster named", "cluster_id", id, "name", name, "was", had)
		return name, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO clusters (id, name, first_seen) VALUES (?, ?, ?)`, id, name, fmtTime(now)); err != nil {
		return "", err
	}
	if n == 0 {
		// Rows written before the first binding (schema upgrades, a
		// daemon that never reached PD) belong to it.
		for _, tbl := range []string{"tickets", "action_proposals", "action_followups", "monitor_alerts", "monitor_state", "outbox"} {
			if _, err := tx.ExecContext(ctx, `UPDATE `+tbl+` SET cluster_id = ? WHERE cluster_id = ''`, id); err != nil {
				return "", err
			}
		}
	}
	return name, nil
}

// clusterNameTx returns the name of PD cluster id, "" when unknown.
func clusterNameTx(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) string {
	if id == "" {
		return ""
	}
	var name string
	if err := q.QueryRowContext(ctx, `SELECT name FROM clusters WHERE id = ?`, id).Scan(&name); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return ""
	}
	return name
}
