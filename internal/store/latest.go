package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/tikvops/operator/internal/action"
)

// LatestProposals returns, for each of the tickets ids, its newest
// proposal (highest id), keyed by ticket id; tickets without one are
// absent. One query whatever the number of tickets (it uses the
// action_proposals_ticket_id index), so `tickets list` costs the same
// with 10 or 10,000 rows.
func (s *Store) LatestProposals(ctx context.Context, ids []int64) (map[int64]action.Proposal, error) {
	out := make(map[int64]action.Proposal, len(ids))
	const chunk = 500 // SQLite's default variable limit is far above; keep statements small
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		part := ids[:n]
		ids = ids[n:]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		q := `SELECT ` + prefixed("p.", proposalCols) + ` FROM action_proposals p
JOIN (SELECT ticket_id, max(id) AS id FROM action_proposals WHERE ticket_id IN (` + placeholders(len(part)) + `) GROUP BY ticket_id) m
ON p.id = m.id`
		ps, err := s.queryProposals(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("latest proposals: %w", err)
		}
		for _, p := range ps {
			out[p.TicketID] = p
		}
	}
	return out, nil
}

// prefixed qualifies every column of a comma-separated list with prefix.
func prefixed(prefix, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}
