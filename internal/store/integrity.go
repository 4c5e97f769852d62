package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auditkey"
)

// ErrWrongCluster is returned (wrapped) when what is asked about (a
// database binding, an action, an approval) belongs to a PD cluster other
// than the one this process watches.
var ErrWrongCluster = errors.New("wrong PD cluster")

// BindCluster binds this store handle to PD's cluster id (GET
// /pd/api/v1/cluster, field "id", as a decimal string) under name (the
// configured [cluster] name) and makes it the
// cluster every new ticket, proposal and record of this handle is tagged
// with and every daemon-side read is scoped to (clusters.go). A name is
// bound to one PD cluster id forever: a name bound to another id is
// refused with ErrWrongCluster naming both ids, and so is an id already
// bound under another name (except DefaultClusterName, the never-named
// cluster of an older database, which takes the name); nothing changes
// then. A new name with a new id is added. name "" takes the name the id
// is bound under, or DefaultClusterName for the database's first cluster;
// a new id without a name is refused when the database holds a cluster
// (adding one takes a name). The first cluster bound adopts the rows
// written before any binding.
func (s *Store) BindCluster(ctx context.Context, id, name string, now time.Time) error {
	id = strings.TrimSpace(id)
	if id == "" || id == "0" {
		return fmt.Errorf("bind cluster: %w: PD reported no cluster id", ErrInvalid)
	}
	name = strings.TrimSpace(name)
	if name != "" {
		if err := ValidClusterName(name); err != nil {
			return fmt.Errorf("bind cluster: %w", err)
		}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		name, err = s.bindClusterTx(ctx, tx, id, name, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("bind cluster: %w", err)
	}
	s.imu.Lock()
	s.cluster, s.clusterNm = id, name
	s.imu.Unlock()
	return nil
}

// ValidClusterName refuses a cluster name that is empty, longer than 64
// bytes, or not made of letters, digits, '.', '_' and '-' (it is shown in
// tables and URLs). Errors: ErrInvalid (wrapped).
func ValidClusterName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w: cluster name %q must be 1 to 64 characters", ErrInvalid, name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: cluster name %q: only letters, digits, '.', '_' and '-'", ErrInvalid, name)
		}
	}
	return nil
}

// Clusters returns the PD cluster ids the database is bound to, oldest
// first (none before the daemon's first contact with PD).
func (s *Store) Clusters(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM clusters ORDER BY first_seen`)
	if err != nil {
		return nil, fmt.Errorf("read clusters: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("read clusters: %w", err)
		}
		ids = append(ids, c)
	}
	return ids, rows.Err()
}

// ClusterID returns the cluster id set by BindCluster ("" before).
func (s *Store) ClusterID() string {
	s.imu.RLock()
	defer s.imu.RUnlock()
	return s.cluster
}

// SetAuditKey makes the store sign every record it appends with key and
// append the new chain head to checkpoint after each commit (either may
// be nil). onAppend, when not nil, is called with each appended record
// after its commit (the daemon logs the head and exports it as a metric).
func (s *Store) SetAuditKey(key *auditkey.Key, checkpoint *auditkey.Checkpoint, onAppend func(action.Record)) {
	s.imu.Lock()
	defer s.imu.Unlock()
	s.signer, s.checkpoint, s.onAppend = key, checkpoint, onAppend
}

// afterAppend writes the checkpoint and calls the hook for a committed
// record. A checkpoint that cannot be written is reported through the
// logger: the record itself is committed.
func (s *Store) afterAppend(rec action.Record) {
	if rec.ID == 0 {
		return
	}
	s.imu.RLock()
	cp, hook := s.checkpoint, s.onAppend
	s.imu.RUnlock()
	if cp != nil {
		if err := cp.Append(rec.ID, rec.Hash, time.Now()); err != nil {
			s.log.Error("audit checkpoint not written", "record_id", rec.ID, "err", err)
		}
	}
	if hook != nil {
		hook(rec)
	}
}

// Approvals returns the approval records of proposal id, oldest first.
func (s *Store) Approvals(ctx context.Context, id int64) ([]action.Record, error) {
	return queryRecords(ctx, s.db, `SELECT `+recordCols+` FROM action_records WHERE proposal_id = ? AND event = 'approval' ORDER BY id`, id)
}

// LatestDryRun returns the newest dry-run record of proposal id, or nil.
func (s *Store) LatestDryRun(ctx context.Context, id int64) (*action.Record, error) {
	recs, err := queryRecords(ctx, s.db, `SELECT `+recordCols+` FROM action_records WHERE proposal_id = ? AND event = 'dry_run' ORDER BY id DESC LIMIT 1`, id)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return &recs[0], nil
}

func queryRecords(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]action.Record, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	defer rows.Close()
	var out []action.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("list records: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
