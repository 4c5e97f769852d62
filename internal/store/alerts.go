package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AlertState is one alert received from Alertmanager (table alerts).
type AlertState struct {
	Fingerprint string
	AlertName   string
	GroupKey    string
	Status      string // firing | resolved
	TicketID    int64  // the alert's own ticket (0 before it has one)
	Invariant   string
	Subject     string
	Labels      string // JSON
	StartsAt    time.Time
	EndsAt      *time.Time
}

// UpsertAlert records a (fingerprint-deduplicated) alert and returns the
// previous state (ok false when new). TicketID 0 keeps the stored one.
func (s *Store) UpsertAlert(ctx context.Context, a AlertState, now time.Time) (prev AlertState, ok bool, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		var (
			tid sql.NullInt64
			st  timeCol
		)
		e := tx.QueryRowContext(ctx, `SELECT alertname, group_key, status, ticket_id, invariant, subject, starts_at FROM alerts WHERE fingerprint = ?`, a.Fingerprint).
			Scan(&prev.AlertName, &prev.GroupKey, &prev.Status, &tid, &prev.Invariant, &prev.Subject, &st)
		switch {
		case errors.Is(e, sql.ErrNoRows):
		case e != nil:
			return e
		default:
			ok = true
			prev.Fingerprint, prev.TicketID = a.Fingerprint, tid.Int64
			if p := st.ptr(); p != nil {
				prev.StartsAt = *p
			}
		}
		if a.TicketID == 0 {
			a.TicketID = prev.TicketID
		}
		var t any
		if a.TicketID != 0 {
			t = a.TicketID
		}
		_, e = tx.ExecContext(ctx, `INSERT INTO alerts (fingerprint, alertname, group_key, status, ticket_id, invariant, subject, labels, starts_at, ends_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(fingerprint) DO UPDATE SET group_key = excluded.group_key, status = excluded.status, ticket_id = excluded.ticket_id,
	labels = excluded.labels, starts_at = excluded.starts_at, ends_at = excluded.ends_at, received = received + 1, updated_at = excluded.updated_at`,
			a.Fingerprint, a.AlertName, a.GroupKey, a.Status, t, a.Invariant, a.Subject, a.Labels, fmtTime(a.StartsAt), nullTime(a.EndsAt), fmtTime(now))
		return e
	})
	if err != nil {
		return AlertState{}, false, fmt.Errorf("record alert %s: %w", a.Fingerprint, err)
	}
	return prev, ok, nil
}

// FiringAlerts counts the firing alerts whose ticket is ticketID.
func (s *Store) FiringAlerts(ctx context.Context, ticketID int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM alerts WHERE ticket_id = ? AND status = 'firing'`, ticketID).Scan(&n)
	return n, err
}
