package diagnosetest

import (
	"context"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/store"
)

// StoreSink adapts the SQLite ticket store to diagnose.Sink, the way the
// daemon wires the runner to it.
type StoreSink struct{ S *store.Store }

// SaveDiagnosis stores r through store.SaveDiagnosis.
func (k StoreSink) SaveDiagnosis(ctx context.Context, ticketID int64, r diagnose.Result, now time.Time) (int64, error) {
	return k.S.SaveDiagnosis(ctx, ticketID, store.DiagnosisInput{
		Markdown:     r.Markdown,
		JSON:         r.JSON,
		Backend:      r.Diagnosis.Backend,
		InputTokens:  r.Diagnosis.Usage.InputTokens,
		OutputTokens: r.Diagnosis.Usage.OutputTokens,
		Proposal:     r.Proposal,
	}, now)
}

// DiagnosisFailed records a failed attempt, and the tokens it spent,
// through store.DiagnosisFailedSpent.
func (k StoreSink) DiagnosisFailed(ctx context.Context, ticketID int64, errMsg string, next time.Time, spent diagnose.Usage) error {
	return k.S.DiagnosisFailedSpent(ctx, ticketID, errMsg, next, spent.InputTokens, spent.OutputTokens)
}
