package store

import (
	"context"
	"fmt"
)

// SetProposedByForTest overwrites a proposal's proposed_by. Tests use it to
// make an action look proposed by a person; nothing else calls it.
func (s *Store) SetProposedByForTest(ctx context.Context, id int64, by string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE action_proposals SET proposed_by = ? WHERE id = ?`, by, id)
	if err != nil {
		return fmt.Errorf("set proposed_by of action %d: %w", id, err)
	}
	return nil
}
