package store

import (
	"context"
	"fmt"
)

// ChangeMark returns a short string that changes whenever a ticket, a
// proposal or an audit record is added or updated (the highest id and
// updated_at of tickets and action_proposals, and the highest id of
// action_records): the web console polls it (one indexed query, about a
// millisecond) to push "changed" events to open pages.
func (s *Store) ChangeMark(ctx context.Context) (string, error) {
	var t, p, r string
	err := s.db.QueryRowContext(ctx, `SELECT
 (SELECT COALESCE(MAX(id), 0) || '/' || COALESCE(MAX(updated_at), '') FROM tickets),
 (SELECT COALESCE(MAX(id), 0) || '/' || COALESCE(MAX(updated_at), '') FROM action_proposals),
 (SELECT COALESCE(MAX(id), 0) FROM action_records)`).Scan(&t, &p, &r)
	if err != nil {
		return "", fmt.Errorf("change mark: %w", err)
	}
	return t + " " + p + " " + r, nil
}
