package tikv

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tikvops/operator/internal/action"
)

// MaxOperatorFollow bounds how long the executor keeps following a PD
// operator still running at the execution deadline: PD's SlowStepWaitTime,
// the longest a step of an admin operator may take (PD
// pkg/schedule/operator/step.go: FastStepWaitTime 60 s for leader
// transfers and peer removal, SlowStepWaitTime 10 min for adding peers and
// merges; the operator's timeout is the sum over its steps).
const MaxOperatorFollow = 10 * time.Minute

// Follow implements action.Follower for the operator-based actions: it
// follows the operator out.Observed names (its region and description)
// until PD reports it finished (SUCCESS counts as done; TIMEOUT, CANCEL,
// REPLACE as failed), or ctx ends, bounded by MaxOperatorFollow. Nothing is
// sent.
func (a *pdAction) Follow(ctx context.Context, _ json.RawMessage, out action.Outcome) (action.Outcome, error) {
	var obs struct {
		Operator string `json:"operator"`
		Region   *struct {
			ID uint64 `json:"id"`
		} `json:"region"`
	}
	b, err := json.Marshal(out.Observed)
	if err == nil {
		err = json.Unmarshal(b, &obs)
	}
	if err != nil || obs.Region == nil || obs.Region.ID == 0 || obs.Operator == "" {
		return out, fmt.Errorf("%s: the outcome names no PD operator to follow", a.spec.Name)
	}
	// PD's description changes as the operator advances (currentStep,
	// status): follow the operator kind ("admin-transfer-leader").
	verify := operatorVerifier(a.c, Follow{RegionID: obs.Region.ID, Desc: firstWord(obs.Operator)})
	cfg := *a.cfg
	cfg.verifyTimeout = MaxOperatorFollow // ctx's deadline, when earlier, wins
	fa := &pdAction{spec: a.spec, c: a.c, cfg: &cfg}
	v, err := fa.poll(ctx, verify)
	res := action.Outcome{Requests: out.Requests, Previous: out.Previous, Observed: v.observed}
	switch {
	case v.done:
		res.Success = true
		res.Message = "verified: " + v.msg
	case v.failed:
		res.Message = "failed: " + v.msg
	case v.running:
		res.Running = true
		res.Message = "still running: " + v.msg
	default:
		msg := v.msg
		if err != nil {
			msg = fmt.Sprintf("%s (last read error: %v)", msg, err)
		}
		res.Message = "sent but not verified: " + msg
	}
	return res, nil
}

var _ action.Follower = (*pdAction)(nil)
