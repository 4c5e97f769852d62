package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/slack-go/slack"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/safetext"
	"github.com/tikvops/operator/internal/store"
)

// Slack action ids of the approval buttons and the reject modal.
const (
	ActionApprove  = "operator_approve"
	ActionReject   = "operator_reject"
	CallbackReject = "operator_reject_reason"
	BlockReason    = "reason"
	ActionReason   = "reason_input"
	// MetadataType is the Slack message metadata event_type; its payload's
	// "key" is the event's idempotency key.
	MetadataType = "operator_event"
)

// Slack posts Block Kit messages through Slack's Web API. An approval
// request carries Approve and Reject buttons (when a signing secret is
// configured); later decisions on the same action update that message in
// place (chat.update) and add a reply in its thread.
type Slack struct {
	cfg     config.SlackSink
	api     *slack.Client
	st      *store.Store
	console string
}

// NewSlack returns a Slack sink.
func NewSlack(cfg config.SlackSink, consoleURL string, st *store.Store) *Slack {
	opts := []slack.Option{}
	if cfg.APIURL != "" {
		u := cfg.APIURL
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		opts = append(opts, slack.OptionAPIURL(u))
	}
	return &Slack{cfg: cfg, api: slack.New(cfg.Token, opts...), st: st, console: consoleURL}
}

// Name implements Sink.
func (s *Slack) Name() string { return s.cfg.Name }

// Client is the Slack Web API client (shared with Interactions).
func (s *Slack) Client() *slack.Client { return s.api }

func awaitingKey(id int64) string {
	return "proposal/" + strconv.FormatInt(id, 10) + "/awaiting_approval"
}

// Deliver implements Sink. An event in doubt (the process
// stopped during an earlier attempt) is first looked up in the channel's
// recent history by its metadata key, so it is never posted twice.
func (s *Slack) Deliver(ctx context.Context, d store.Delivery) (string, error) {
	ev := d.Event
	if d.InDoubt {
		if ref, err := s.find(ctx, ev.Key); err != nil {
			return "", fmt.Errorf("look for an earlier post: %w", err)
		} else if ref != "" {
			return ref, nil
		}
	}
	if ev.Kind == store.KindAwaitingApproval {
		ch, ts, err := s.api.PostMessageContext(ctx, s.cfg.Channel,
			slack.MsgOptionText(ev.Text, false),
			slack.MsgOptionBlocks(s.approvalBlocks(ev, "", s.cfg.SigningSecret != "")...),
			slack.MsgOptionMetadata(slack.SlackMetadata{EventType: MetadataType, EventPayload: map[string]any{"key": ev.Key}}))
		if err != nil {
			return "", slackErr(err)
		}
		return ch + "/" + ts, nil
	}
	if ev.Action != nil && ev.Record != nil {
		if ref, _ := s.st.DeliveryRef(ctx, awaitingKey(ev.Action.ID), s.cfg.Name); ref != "" {
			ch, ts, _ := strings.Cut(ref, "/")
			if err := s.UpdateDecision(ctx, ch, ts, ev.Action.ID, decisionLine(ev)); err != nil {
				return "", err
			}
			_, rts, err := s.api.PostMessageContext(ctx, ch, slack.MsgOptionText(ev.Text, false), slack.MsgOptionTS(ts))
			if err != nil {
				return "", slackErr(err)
			}
			return ch + "/" + rts, nil
		}
	}
	ch, ts, err := s.api.PostMessageContext(ctx, s.cfg.Channel, slack.MsgOptionText(ev.Text, false),
		slack.MsgOptionBlocks(s.eventBlocks(ev)...),
		slack.MsgOptionMetadata(slack.SlackMetadata{EventType: MetadataType, EventPayload: map[string]any{"key": ev.Key}}))
	if err != nil {
		return "", slackErr(err)
	}
	return ch + "/" + ts, nil
}

// find looks for a message carrying key in the channel's recent history.
func (s *Slack) find(ctx context.Context, key string) (string, error) {
	h, err := s.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: s.cfg.Channel, Limit: 200, IncludeAllMetadata: true})
	if err != nil {
		return "", slackErr(err)
	}
	for _, m := range h.Messages {
		if m.Metadata.EventType == MetadataType && m.Metadata.EventPayload["key"] == key {
			return s.cfg.Channel + "/" + m.Timestamp, nil
		}
	}
	return "", nil
}

// slackErr makes Slack's refusals permanent (invalid_auth,
// channel_not_found...) and keeps rate limits and transport errors
// retryable.
func slackErr(err error) error {
	var rl *slack.RateLimitedError
	if ok := asErr(err, &rl); ok {
		return err
	}
	var se slack.SlackErrorResponse
	if asErr(err, &se) {
		return Permanent(err)
	}
	var sc slack.StatusCodeError
	if asErr(err, &sc) && sc.Code >= 400 && sc.Code < 500 && sc.Code != 408 && sc.Code != 429 {
		return Permanent(err)
	}
	return err
}

func decisionLine(ev store.OutboxEvent) string {
	switch ev.Kind {
	case store.KindApproved:
		return ":white_check_mark: " + safetext.Text(ev.Record.Message, 300)
	case store.KindRejected:
		return ":no_entry: " + safetext.Text(ev.Record.Message, 300)
	case store.KindCompleted:
		return ":tada: executed: " + safetext.Text(ev.Record.Message, 300)
	case store.KindFailed:
		return ":x: failed: " + safetext.Text(ev.Record.Message, 300)
	case store.KindExpired:
		return ":hourglass: expired: " + safetext.Text(ev.Record.Message, 300)
	case store.KindRefused:
		return ":octagonal_sign: refused: " + safetext.Text(ev.Record.Message, 300)
	}
	return safetext.Text(ev.Text, 300)
}

// UpdateDecision rewrites the approval request of action id (channel ch,
// message ts) in place: the same content, the status line, and the
// buttons only while the action still awaits a decision.
func (s *Slack) UpdateDecision(ctx context.Context, ch, ts string, id int64, line string) error {
	ev, err := s.st.OutboxEventByKey(ctx, awaitingKey(id))
	if err != nil {
		return err
	}
	buttons := false
	if p, err := s.st.Proposal(ctx, id); err == nil {
		buttons = s.cfg.SigningSecret != "" && (p.Status == action.Proposed || p.Status == action.DryRun)
	}
	_, _, _, err = s.api.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText(ev.Text+" — "+line, false),
		slack.MsgOptionBlocks(s.approvalBlocks(ev, line, buttons)...))
	return slackErr(err)
}

func md(text string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, text, false, false)
}

func plain(text string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, text, false, false)
}

// code renders untrusted text as a bounded code block.
func code(s string, n int) string {
	s = strings.ReplaceAll(safetext.Text(s, n), "```", "'''")
	return "```" + s + "```"
}

func (s *Slack) link(ticketID int64) string {
	if s.console == "" {
		return ""
	}
	return "<" + strings.TrimRight(s.console, "/") + "/tickets/" + strconv.FormatInt(ticketID, 10) + "|open in console>"
}

// approvalBlocks renders an approval request: ticket, evidence, diagnosis,
// proposed action, its dry-run requests, console link, status line and
// the buttons.
func (s *Slack) approvalBlocks(ev store.OutboxEvent, status string, buttons bool) []slack.Block {
	a := ev.Action
	var blocks []slack.Block
	blocks = append(blocks, slack.NewHeaderBlock(plain(safetext.Text(fmt.Sprintf("Approval needed: %s (action %d)", a.Type, a.ID), 150))))
	if ev.Ticket != nil {
		t := ev.Ticket
		blocks = append(blocks, slack.NewSectionBlock(nil, []*slack.TextBlockObject{
			md("*Ticket* " + strconv.FormatInt(t.ID, 10) + ": " + safetext.Text(t.Summary, 300)),
			md("*Severity* " + string(ev.Severity) + "\n*Invariant* `" + safetext.Text(ev.Invariant, 100) + "` on `" + safetext.Text(ev.Subject, 100) + "`"),
		}, nil))
		if len(t.Evidence) > 0 {
			blocks = append(blocks, slack.NewSectionBlock(md("*Evidence*\n"+code(string(t.Evidence), 1500)), nil, nil))
		}
		if t.Diagnosis != "" {
			blocks = append(blocks, slack.NewSectionBlock(md("*Diagnosis* "+safetext.Text(t.Diagnosis, 500)), nil, nil))
		}
	}
	params, _ := json.Marshal(a.Params)
	text := "*Proposed action* `" + a.Type + "` " + code(string(params), 500)
	if a.Rationale != "" {
		text += "\n" + safetext.Text(a.Rationale, 800)
	}
	blocks = append(blocks, slack.NewSectionBlock(md(text), nil, nil))
	if len(a.DryRun) > 0 {
		var b strings.Builder
		for _, r := range a.DryRun {
			b.WriteString(r.String())
			b.WriteString("\n")
		}
		blocks = append(blocks, slack.NewSectionBlock(md("*Dry run: PD requests an execution would send*\n"+code(b.String(), 1500)), nil, nil))
	}
	ctxText := "expires " + a.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC") + " · proposed by " + safetext.Text(a.ProposedBy, 60)
	if ev.Ticket != nil {
		if l := s.link(ev.Ticket.ID); l != "" {
			ctxText += " · " + l
		}
	}
	blocks = append(blocks, slack.NewContextBlock("", md(ctxText)))
	if status != "" {
		blocks = append(blocks, slack.NewSectionBlock(md(status), nil, nil))
	}
	if buttons {
		id := strconv.FormatInt(a.ID, 10)
		ok := slack.NewButtonBlockElement(ActionApprove, id, plain("Approve"))
		ok.Style = slack.StylePrimary
		no := slack.NewButtonBlockElement(ActionReject, id, plain("Reject…"))
		no.Style = slack.StyleDanger
		blocks = append(blocks, slack.NewActionBlock("decision", ok, no))
	}
	return blocks
}

// eventBlocks renders any other event: its line, and a console link.
func (s *Slack) eventBlocks(ev store.OutboxEvent) []slack.Block {
	blocks := []slack.Block{slack.NewSectionBlock(md(safetext.Text(ev.Text, 2500)), nil, nil)}
	if ev.Ticket != nil {
		ctxText := "ticket " + strconv.FormatInt(ev.Ticket.ID, 10) + " · " + string(ev.Severity)
		if l := s.link(ev.Ticket.ID); l != "" {
			ctxText += " · " + l
		}
		blocks = append(blocks, slack.NewContextBlock("", md(ctxText)))
	}
	return blocks
}
