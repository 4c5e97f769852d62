package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/safetext"
)

// Decider makes decisions as an authenticated identity
// (*executor.Executor): the same binding, policy, two-person rule and
// expiry as every other approval.
type Decider interface {
	ApproveAs(ctx context.Context, id int64, who auth.Identity, d executor.Decision) (action.Proposal, executor.ApprovalResult, error)
	RejectAs(ctx context.Context, id int64, who auth.Identity, d executor.Decision, reason string) (action.Proposal, error)
}

// MaxSkew is how old (or how far in the future) a signed Slack request
// may be; Slack's own recommendation.
const MaxSkew = 5 * time.Minute

// Interactions serves Slack's interactivity callbacks
// (POST /api/v1/slack/interactions): it verifies the signing secret
// (X-Slack-Signature v0 over "v0:TIMESTAMP:BODY", X-Slack-Request-Timestamp
// within MaxSkew), refuses a request whose signature it has already seen
// (replay), maps the Slack user to an operator identity from the
// configuration (an unmapped user cannot decide), and approves or rejects
// through the Decider with Via "slack". Reject opens a modal that asks for
// the reason; the rejection happens when it is submitted.
type Interactions struct {
	slack   *Slack
	decider Decider
	users   map[string]auth.Identity
	now     func() time.Time
	log     *slog.Logger

	mu   sync.Mutex
	seen map[string]time.Time // signature -> first seen
}

// NewInteractions returns the callback handler of sink s.
func NewInteractions(s *Slack, d Decider, log *slog.Logger) *Interactions {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	users := map[string]auth.Identity{}
	for _, u := range s.cfg.Users {
		role, err := auth.ParseRole(u.Role)
		if err != nil || auth.ValidName(u.Name) != nil {
			continue
		}
		users[u.SlackID] = auth.Identity{Name: u.Name, Role: role, Via: "slack"}
	}
	return &Interactions{slack: s, decider: d, users: users, now: time.Now, log: log, seen: map[string]time.Time{}}
}

// replayed records sig and reports whether it was seen before; entries
// older than twice MaxSkew are forgotten (their timestamp is stale by then).
func (in *Interactions) replayed(sig string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := in.now()
	for k, t := range in.seen {
		if now.Sub(t) > 2*MaxSkew {
			delete(in.seen, k)
		}
	}
	if _, ok := in.seen[sig]; ok {
		return true
	}
	in.seen[sig] = now
	return false
}

func (in *Interactions) verify(h http.Header, body []byte) error {
	if in.slack.cfg.SigningSecret == "" {
		return errors.New("no signing secret configured")
	}
	if h.Get("X-Slack-Signature") == "" || h.Get("X-Slack-Request-Timestamp") == "" {
		return errors.New("unsigned request")
	}
	ts, err := strconv.ParseInt(h.Get("X-Slack-Request-Timestamp"), 10, 64)
	if err != nil {
		return errors.New("bad X-Slack-Request-Timestamp")
	}
	if d := in.now().Sub(time.Unix(ts, 0)); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("stale request (timestamp %s old)", d.Round(time.Second))
	}
	sv, err := slack.NewSecretsVerifier(h, in.slack.cfg.SigningSecret)
	if err != nil {
		return err
	}
	if _, err := sv.Write(body); err != nil {
		return err
	}
	if err := sv.Ensure(); err != nil {
		return errors.New("signature mismatch")
	}
	if in.replayed(h.Get("X-Slack-Signature")) {
		return errors.New("replayed request")
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (in *Interactions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 256<<10))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := in.verify(r.Header, body); err != nil {
		in.log.Warn("slack callback refused", "err", err, "remote", r.RemoteAddr)
		http.Error(w, "refused: "+err.Error(), http.StatusUnauthorized)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("payload") == "" {
		http.Error(w, "no payload", http.StatusBadRequest)
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		http.Error(w, "bad payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx := context.WithoutCancel(r.Context())
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		in.blockActions(ctx, &cb)
		w.WriteHeader(http.StatusOK)
	case slack.InteractionTypeViewSubmission:
		in.viewSubmission(ctx, w, &cb)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// tell sends the user a message only they see.
func (in *Interactions) tell(ctx context.Context, ch, user, text string) {
	if ch == "" {
		ch = in.slack.cfg.Channel
	}
	if _, err := in.slack.api.PostEphemeralContext(ctx, ch, user, slack.MsgOptionText(safetext.Text(text, 1000), false)); err != nil {
		in.log.Warn("slack ephemeral", "err", err)
	}
}

func (in *Interactions) blockActions(ctx context.Context, cb *slack.InteractionCallback) {
	if len(cb.ActionCallback.BlockActions) == 0 {
		return
	}
	act := cb.ActionCallback.BlockActions[0]
	id, err := strconv.ParseInt(act.Value, 10, 64)
	if err != nil || id <= 0 {
		return
	}
	ch, ts := cb.Channel.ID, cb.Container.MessageTs
	if ts == "" {
		ts = cb.Message.Timestamp
	}
	who, ok := in.users[cb.User.ID]
	if !ok {
		in.log.Warn("slack user not mapped to an operator identity", "slack_user", cb.User.ID, "action_id", id)
		in.tell(ctx, ch, cb.User.ID, fmt.Sprintf("You (%s) are not mapped to an operator identity: you cannot decide on action %d.", cb.User.ID, id))
		return
	}
	switch act.ActionID {
	case ActionApprove:
		p, res, err := in.decider.ApproveAs(ctx, id, who, executor.Decision{})
		if err != nil {
			in.tell(ctx, ch, cb.User.ID, "Not approved: "+err.Error())
			in.refresh(ctx, ch, ts, id)
			return
		}
		line := fmt.Sprintf(":white_check_mark: approved by %s via Slack", who.Name)
		if p.Status != action.Approved {
			line += fmt.Sprintf(" (%d of %d approvals)", res.Approvals, res.Required)
		}
		if err := in.slack.UpdateDecision(ctx, ch, ts, id, line); err != nil {
			in.log.Warn("slack update", "err", err)
		}
	case ActionReject:
		if !who.Role.AtLeast(auth.Approver) {
			in.tell(ctx, ch, cb.User.ID, fmt.Sprintf("%s has role %s: rejecting needs approver.", who.Name, who.Role))
			return
		}
		meta, _ := json.Marshal(rejectMeta{ID: id, Channel: ch, TS: ts})
		input := slack.NewPlainTextInputBlockElement(plain("why not (recorded in the audit trail)"), ActionReason)
		input.Multiline = true
		view := slack.ModalViewRequest{
			Type: slack.VTModal, Title: plain("Reject action " + strconv.FormatInt(id, 10)),
			Submit: plain("Reject"), Close: plain("Cancel"), CallbackID: CallbackReject, PrivateMetadata: string(meta),
			Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewInputBlock(BlockReason, plain("Reason"), nil, input)}},
		}
		if _, err := in.slack.api.OpenViewContext(ctx, cb.TriggerID, view); err != nil {
			in.log.Warn("slack views.open", "err", err)
			in.tell(ctx, ch, cb.User.ID, "Could not ask for a reason: "+err.Error())
		}
	}
}

// refresh rewrites the message from the action's current status (after a
// refused decision: someone else decided first, or it expired).
func (in *Interactions) refresh(ctx context.Context, ch, ts string, id int64) {
	p, err := in.slack.st.Proposal(ctx, id)
	if err != nil {
		return
	}
	line := "status: " + string(p.Status)
	switch p.Status {
	case action.Approved, action.Executing, action.Completed:
		line = ":white_check_mark: approved by " + p.ApprovedBy + " (" + string(p.Status) + ")"
	case action.Rejected:
		line = ":no_entry: rejected by " + p.RejectedBy + ": " + p.RejectionReason
	}
	if err := in.slack.UpdateDecision(ctx, ch, ts, id, safetext.Text(line, 300)); err != nil {
		in.log.Warn("slack update", "err", err)
	}
}

type rejectMeta struct {
	ID      int64  `json:"id"`
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

func (in *Interactions) viewSubmission(ctx context.Context, w http.ResponseWriter, cb *slack.InteractionCallback) {
	if cb.View.CallbackID != CallbackReject {
		w.WriteHeader(http.StatusOK)
		return
	}
	var meta rejectMeta
	if err := json.Unmarshal([]byte(cb.View.PrivateMetadata), &meta); err != nil || meta.ID <= 0 {
		http.Error(w, "bad private_metadata", http.StatusBadRequest)
		return
	}
	reason := ""
	if cb.View.State != nil {
		reason = strings.TrimSpace(cb.View.State.Values[BlockReason][ActionReason].Value)
	}
	reason = safetext.Text(reason, 1000)
	respondErr := func(msg string) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"response_action": "errors", "errors": map[string]string{BlockReason: msg}})
	}
	if reason == "" {
		respondErr("A reason is required to reject.")
		return
	}
	who, ok := in.users[cb.User.ID]
	if !ok {
		respondErr("You are not mapped to an operator identity.")
		return
	}
	if _, err := in.decider.RejectAs(ctx, meta.ID, who, executor.Decision{}, reason); err != nil {
		respondErr(safetext.Text("Not rejected: "+err.Error(), 150))
		in.refresh(ctx, meta.Channel, meta.TS, meta.ID)
		return
	}
	if err := in.slack.UpdateDecision(ctx, meta.Channel, meta.TS, meta.ID, ":no_entry: rejected by "+who.Name+" via Slack: "+reason); err != nil {
		in.log.Warn("slack update", "err", err)
	}
	w.WriteHeader(http.StatusOK)
}
