package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Fencing of the leader's writes (several `operator run` replicas, one
// leader elected on PD's etcd; docs/ha.md).
//
// A leader's term is its election revision in etcd (internal/ha): every
// new leader has a higher one. The leader's parts write with a context
// carrying the term (WithTerm). Every write transaction of such a context
// first compares the term with the highest term recorded for the database's
// cluster (table leader_terms), inside the same BEGIN IMMEDIATE
// transaction: a lower term is refused with ErrStaleTerm and nothing is
// written; a higher one is recorded. So once a new leader has written
// anything (it records its term at once when elected, AdvanceTerm), a
// deposed leader that wakes up (a paused process, a partition) can neither
// claim nor finish an action, nor write a ticket or a diagnosis.
// Claims and finishes also store the term on the proposal (claim_term,
// finish_term), which is what recovery goes by (ExecutingTerms). Writes
// without a term (term 0: a daemon without [ha], the API's decisions, the
// CLI) are not fenced.

// schemaV7 adds leader_terms and the term of an action's claim and finish.
const schemaV7 = `
CREATE TABLE leader_terms (
	cluster_id TEXT    PRIMARY KEY,        -- PD cluster id, decimal
	term       INTEGER NOT NULL CHECK (term > 0),
	updated_at TEXT    NOT NULL
);
ALTER TABLE action_proposals ADD COLUMN claim_term INTEGER;   -- term of the claim (NULL: no HA)
ALTER TABLE action_proposals ADD COLUMN finish_term INTEGER;  -- term of the finish (NULL: no HA)
`

// ErrStaleTerm is returned (wrapped, naming both terms) by every write made
// with a context whose term (WithTerm) is lower than the highest term
// recorded for the cluster: a newer leader exists, and this one must stop.
// Nothing was written.
var ErrStaleTerm = errors.New("stale leader term")

type termKey struct{}

// WithTerm returns a context whose store writes carry the leader term
// (> 0; internal/ha: the election's revision in PD's etcd) and are fenced
// by it. term 0 returns a context without a term (no HA).
func WithTerm(ctx context.Context, term int64) context.Context {
	if term <= 0 {
		if TermFrom(ctx) == 0 {
			return ctx
		}
		term = 0
	}
	return context.WithValue(ctx, termKey{}, term)
}

// TermFrom returns the leader term carried by ctx, or 0.
func TermFrom(ctx context.Context) int64 {
	t, _ := ctx.Value(termKey{}).(int64)
	return t
}

// fence checks the term of ctx against leader_terms inside tx (see the
// comment at the top of this file). It refuses a term when the database is
// not bound to a cluster yet: the term's scope would be unknown.
func (s *Store) fence(ctx context.Context, tx *sql.Tx, now time.Time) error {
	term := TermFrom(ctx)
	if term == 0 {
		return nil
	}
	cluster := s.ClusterID()
	if cluster == "" {
		return fmt.Errorf("%w: leader term %d given but the database is not bound to a PD cluster yet (missing input: cluster id)", ErrInvalid, term)
	}
	var cur int64
	err := tx.QueryRowContext(ctx, `SELECT term FROM leader_terms WHERE cluster_id = ?`, cluster).Scan(&cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read leader term: %w", err)
	}
	switch {
	case term < cur:
		return fmt.Errorf("%w: this leader's term is %d, but term %d has written to the database since (cluster %s)", ErrStaleTerm, term, cur, cluster)
	case term > cur:
		if _, err := tx.ExecContext(ctx, `INSERT INTO leader_terms (cluster_id, term, updated_at) VALUES (?, ?, ?)
ON CONFLICT (cluster_id) DO UPDATE SET term = excluded.term, updated_at = excluded.updated_at`,
			cluster, term, fmtTime(now)); err != nil {
			return fmt.Errorf("record leader term: %w", err)
		}
	}
	return nil
}

// AdvanceTerm records the term of ctx (WithTerm) as the cluster's highest,
// in its own transaction: a new leader calls it as soon as it is elected,
// so the previous leader's next write is refused. Errors: ErrStaleTerm
// when a higher term is already recorded; ErrInvalid without a term or
// before the database is bound to a cluster.
func (s *Store) AdvanceTerm(ctx context.Context) error {
	if TermFrom(ctx) == 0 {
		return fmt.Errorf("advance leader term: %w: the context carries no term", ErrInvalid)
	}
	if err := s.write(ctx, func(*sql.Tx) error { return nil }); err != nil {
		return fmt.Errorf("advance leader term: %w", err)
	}
	return nil
}

// LeaderTerm returns the highest leader term recorded for the database's
// cluster (over every cluster when this handle is not bound: a CLI), 0
// when none.
func (s *Store) LeaderTerm(ctx context.Context) (int64, error) {
	var t int64
	c := s.ClusterID()
	err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(term), 0) FROM leader_terms WHERE cluster_id = ? OR ? = ''`, c, c).Scan(&t)
	if err != nil {
		return 0, fmt.Errorf("read leader term: %w", err)
	}
	return t, nil
}

// ProposalTerms are the leader terms of an action's claim and finish (0:
// made without a term, or not yet).
type ProposalTerms struct {
	Claim, Finish int64
}

// Terms returns the claim and finish terms of the given proposals (all of
// them when ids is empty), by proposal id.
func (s *Store) Terms(ctx context.Context, ids ...int64) (map[int64]ProposalTerms, error) {
	q := `SELECT id, coalesce(claim_term, 0), coalesce(finish_term, 0) FROM action_proposals`
	args := make([]any, len(ids))
	if len(ids) > 0 {
		q += ` WHERE id IN (` + placeholders(len(ids)) + `)`
		for i, id := range ids {
			args[i] = id
		}
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read action terms: %w", err)
	}
	defer rows.Close()
	out := map[int64]ProposalTerms{}
	for rows.Next() {
		var id int64
		var t ProposalTerms
		if err := rows.Scan(&id, &t.Claim, &t.Finish); err != nil {
			return nil, fmt.Errorf("read action terms: %w", err)
		}
		out[id] = t
	}
	return out, rows.Err()
}

// termSet returns the extra "col = ?" assignment and argument that record
// the term of ctx on a proposal moving from -> to: a claim (to executing)
// sets claim_term, a finish (from executing) finish_term. "" without a
// term.
func termSet(ctx context.Context, from, to string) (string, []any) {
	term := TermFrom(ctx)
	switch {
	case term == 0:
		return "", nil
	case to == "executing":
		return "claim_term = ?", []any{term}
	case from == "executing":
		return "finish_term = ?", []any{term}
	}
	return "", nil
}
