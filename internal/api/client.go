package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// ErrDaemonUnreachable is returned (wrapped) when nothing answers on the
// daemon's socket or URL.
var ErrDaemonUnreachable = errors.New("the operator daemon is not reachable")

// Error is an error answer of the API.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is lets errors.Is match an API error against the store's sentinels, so
// callers branch the same way whether they asked the daemon or the store.
func (e *Error) Is(target error) bool {
	switch e.Code {
	case CodeNotFound:
		return target == store.ErrNotFound
	case CodeExpired:
		return target == store.ErrExpired
	case CodeWrongCluster:
		return target == store.ErrWrongCluster
	}
	return false
}

// Client calls the API over the daemon's Unix socket or an HTTP URL.
type Client struct {
	base  string
	token string
	hc    *http.Client
	where string
}

// NewSocketClient returns a client for the daemon's Unix socket at path:
// the daemon identifies the caller by the socket's peer credentials.
func NewSocketClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{base: "http://operator", hc: &http.Client{Transport: tr, Timeout: 2 * time.Minute}, where: "unix socket " + path}
}

// NewURLClient returns a client for base (http://host:port) sending token
// as a bearer token.
func NewURLClient(base, token string) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, hc: &http.Client{Timeout: 2 * time.Minute}, where: base}
}

// Where names the daemon's address, for messages.
func (c *Client) Where() string { return c.where }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w on %s (is `operator run` running?): %v", ErrDaemonUnreachable, c.where, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("read answer from %s: %w", c.where, err)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Code == "" {
			return &Error{Status: resp.StatusCode, Code: CodeInternal, Message: fmt.Sprintf("%s answered %s", c.where, resp.Status)}
		}
		return &Error{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer from %s: %w", c.where, err)
	}
	return nil
}

// WhoAmI returns the caller's identity as the daemon sees it.
func (c *Client) WhoAmI(ctx context.Context) (WhoAmI, error) {
	var out WhoAmI
	return out, c.do(ctx, http.MethodGet, "/api/v1/whoami", nil, &out)
}

// Action returns an action with its records and its ticket's status.
func (c *Client) Action(ctx context.Context, id int64) (ActionView, error) {
	var out ActionView
	return out, c.do(ctx, http.MethodGet, "/api/v1/actions/"+strconv.FormatInt(id, 10), nil, &out)
}

// Actions lists actions (statuses and ticket optional).
func (c *Client) Actions(ctx context.Context, statuses []action.Status, ticketID int64) ([]action.Proposal, error) {
	q := url.Values{}
	for _, s := range statuses {
		q.Add("status", string(s))
	}
	if ticketID > 0 {
		q.Set("ticket", strconv.FormatInt(ticketID, 10))
	}
	var out []action.Proposal
	return out, c.do(ctx, http.MethodGet, "/api/v1/actions?"+q.Encode(), nil, &out)
}

// Ticket returns a ticket with its actions and records.
func (c *Client) Ticket(ctx context.Context, id int64) (TicketView, error) {
	var out TicketView
	return out, c.do(ctx, http.MethodGet, "/api/v1/tickets/"+strconv.FormatInt(id, 10), nil, &out)
}

// Tickets lists tickets (statuses optional).
func (c *Client) Tickets(ctx context.Context, statuses []ticket.Status) ([]ticket.Ticket, error) {
	q := url.Values{}
	for _, s := range statuses {
		q.Add("status", string(s))
	}
	var out []ticket.Ticket
	return out, c.do(ctx, http.MethodGet, "/api/v1/tickets?"+q.Encode(), nil, &out)
}

// DryRun dry-runs action id.
func (c *Client) DryRun(ctx context.Context, id int64) (DryRunResponse, error) {
	var out DryRunResponse
	return out, c.do(ctx, http.MethodPost, "/api/v1/actions/"+strconv.FormatInt(id, 10)+"/dry-run", struct{}{}, &out)
}

// Approve approves action id.
func (c *Client) Approve(ctx context.Context, id int64, req DecisionRequest) (ApproveResponse, error) {
	var out ApproveResponse
	return out, c.do(ctx, http.MethodPost, "/api/v1/actions/"+strconv.FormatInt(id, 10)+"/approve", req, &out)
}

// Reject rejects action id; req.Reason is required.
func (c *Client) Reject(ctx context.Context, id int64, req DecisionRequest) (action.Proposal, error) {
	var out action.Proposal
	return out, c.do(ctx, http.MethodPost, "/api/v1/actions/"+strconv.FormatInt(id, 10)+"/reject", req, &out)
}

// Records lists audit records (action and ticket optional).
func (c *Client) Records(ctx context.Context, actionID, ticketID int64) ([]action.Record, error) {
	q := url.Values{}
	if actionID > 0 {
		q.Set("action", strconv.FormatInt(actionID, 10))
	}
	if ticketID > 0 {
		q.Set("ticket", strconv.FormatInt(ticketID, 10))
	}
	var out []action.Record
	return out, c.do(ctx, http.MethodGet, "/api/v1/audit?"+q.Encode(), nil, &out)
}

// Verify runs the daemon's audit chain verification.
func (c *Client) Verify(ctx context.Context) (store.VerifyReport, error) {
	var out store.VerifyReport
	return out, c.do(ctx, http.MethodGet, "/api/v1/audit/verify", nil, &out)
}

// Propose proposes a catalog action as the caller (POST /api/v1/actions);
// someone else must approve it.
func (c *Client) Propose(ctx context.Context, req ProposeRequest) (action.Proposal, error) {
	var out action.Proposal
	return out, c.do(ctx, http.MethodPost, "/api/v1/actions", req, &out)
}

// Reverts lists scheduled reverts (statuses and action optional).
func (c *Client) Reverts(ctx context.Context, statuses []store.FollowUpStatus, actionID int64) ([]store.FollowUp, error) {
	q := url.Values{}
	for _, s := range statuses {
		q.Add("status", string(s))
	}
	if actionID > 0 {
		q.Set("action", strconv.FormatInt(actionID, 10))
	}
	var out []store.FollowUp
	return out, c.do(ctx, http.MethodGet, "/api/v1/reverts?"+q.Encode(), nil, &out)
}

// CancelRevert cancels scheduled revert id; req.Reason is required.
func (c *Client) CancelRevert(ctx context.Context, id int64, req RevertRequest) (store.FollowUp, error) {
	var out store.FollowUp
	return out, c.do(ctx, http.MethodPost, "/api/v1/reverts/"+strconv.FormatInt(id, 10)+"/cancel", req, &out)
}

// ExtendRevert postpones scheduled revert id; req.By is required.
func (c *Client) ExtendRevert(ctx context.Context, id int64, req RevertRequest) (store.FollowUp, error) {
	var out store.FollowUp
	return out, c.do(ctx, http.MethodPost, "/api/v1/reverts/"+strconv.FormatInt(id, 10)+"/extend", req, &out)
}
