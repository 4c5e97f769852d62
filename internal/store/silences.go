package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/auditkey"
	"github.com/tikvops/operator/internal/safetext"
)

// Silences and maintenance windows (docs/alerting.md, "Silences and
// maintenance windows").
//
// A silence mutes, for a scope (the whole cluster, one store, one
// invariant, or one invariant on one store) and a time range, the
// notifications about matching tickets (the deliverer marks their
// deliveries silenced) and the diagnosis runner's proposals for them
// (the diagnosis is stored without one). Tickets are still opened and
// diagnosed.
//
// Creating and expiring a silence are audited: rows of silences and
// silence_expiries are append-only (triggers refuse UPDATE and DELETE),
// carry the person's authenticated identity and role, and are hashed
// (SilenceHash, SilenceExpiryHash) and signed with the daemon's audit key
// (SetAuditKey). VerifyWith checks them. Each also writes an outbox event
// (silence/N/created, silence/N/expired) in the same transaction.

// schemaV8 adds silences and their expiries, and the delivery status
// "silenced" (outbox_deliveries is rebuilt to widen its CHECK; nothing
// refers to it, so foreign keys stay on).
const schemaV8 = `
CREATE TABLE silences (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	cluster_id   TEXT    NOT NULL DEFAULT '',
	subject      TEXT    NOT NULL DEFAULT '',     -- '' = every subject, else store:N
	invariant    TEXT    NOT NULL DEFAULT '',     -- '' = every invariant
	starts_at    TEXT    NOT NULL,
	ends_at      TEXT    NOT NULL,
	reason       TEXT    NOT NULL CHECK (reason <> ''),
	created_by   TEXT    NOT NULL CHECK (created_by <> ''),
	created_role TEXT    NOT NULL,
	created_via  TEXT    NOT NULL DEFAULT '',
	created_at   TEXT    NOT NULL,
	hash         TEXT    NOT NULL UNIQUE,         -- SilenceHash
	signature    TEXT    NOT NULL DEFAULT '',     -- audit key's signature of "silence HASH"
	CHECK (ends_at > starts_at)
);
CREATE INDEX silences_ends ON silences(ends_at);

CREATE TABLE silence_expiries (
	silence_id   INTEGER PRIMARY KEY REFERENCES silences(id),
	expired_by   TEXT    NOT NULL CHECK (expired_by <> ''),
	expired_role TEXT    NOT NULL,
	expired_via  TEXT    NOT NULL DEFAULT '',
	reason       TEXT    NOT NULL CHECK (reason <> ''),
	expired_at   TEXT    NOT NULL,
	hash         TEXT    NOT NULL UNIQUE,         -- SilenceExpiryHash
	signature    TEXT    NOT NULL DEFAULT ''
);

CREATE TRIGGER silences_no_update BEFORE UPDATE ON silences
BEGIN
	SELECT RAISE(ABORT, 'silences is append-only: UPDATE refused');
END;
CREATE TRIGGER silences_no_delete BEFORE DELETE ON silences
BEGIN
	SELECT RAISE(ABORT, 'silences is append-only: DELETE refused');
END;
CREATE TRIGGER silence_expiries_no_update BEFORE UPDATE ON silence_expiries
BEGIN
	SELECT RAISE(ABORT, 'silence_expiries is append-only: UPDATE refused');
END;
CREATE TRIGGER silence_expiries_no_delete BEFORE DELETE ON silence_expiries
BEGIN
	SELECT RAISE(ABORT, 'silence_expiries is append-only: DELETE refused');
END;

CREATE TABLE outbox_deliveries_v8 (
	event_id        INTEGER NOT NULL REFERENCES outbox(id),
	sink            TEXT    NOT NULL,
	status          TEXT    NOT NULL DEFAULT 'pending'
	                CHECK (status IN ('pending', 'sending', 'delivered', 'dead', 'silenced')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	in_doubt        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at TEXT    NOT NULL,
	last_error      TEXT    NOT NULL DEFAULT '',
	ref             TEXT    NOT NULL DEFAULT '',
	delivered_at    TEXT,
	updated_at      TEXT    NOT NULL,
	silenced_by     TEXT    NOT NULL DEFAULT '',  -- "#N" or "maintenance window N" while status = silenced
	PRIMARY KEY (event_id, sink)
);
INSERT INTO outbox_deliveries_v8 (event_id, sink, status, attempts, in_doubt, next_attempt_at, last_error, ref, delivered_at, updated_at)
	SELECT event_id, sink, status, attempts, in_doubt, next_attempt_at, last_error, ref, delivered_at, updated_at FROM outbox_deliveries;
DROP TABLE outbox_deliveries;
ALTER TABLE outbox_deliveries_v8 RENAME TO outbox_deliveries;
CREATE INDEX outbox_deliveries_due ON outbox_deliveries(status, next_attempt_at);
`

// Outbox event kinds of silences.
const (
	KindSilenceCreated = "silence_created"
	KindSilenceExpired = "silence_expired"
)

// DeliverySilenced is the status of a delivery a silence muted. It is
// final for a ticket that resolved; for a ticket still open when no
// silence matches any more, ReleaseSilenced moves it back to pending.
const DeliverySilenced = "silenced"

// MaxSilence is the longest a silence may last (end - start): a mute is
// for a maintenance, not forever.
const MaxSilence = 31 * 24 * time.Hour

// ErrSilenceOver is returned (wrapped) when expiring a silence that is
// already expired or past its end.
var ErrSilenceOver = errors.New("silence is already over")

// SilenceExpiry is who ended a silence before its end, when and why.
type SilenceExpiry struct {
	By        string    `json:"by"`
	Role      string    `json:"role"`
	Via       string    `json:"via,omitempty"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
	Hash      string    `json:"hash,omitempty"`
	Signature string    `json:"signature,omitempty"`
}

// Silence mutes notifications and proposals about the tickets in its
// scope between StartsAt and EndsAt (or its expiry, when earlier).
type Silence struct {
	// ID is the silence's number (0 for a configured maintenance window).
	ID int64 `json:"id"`
	// Window is the 1-based position of a configured [[maintenance]]
	// window (0 for a silence made through the API).
	Window    int    `json:"window,omitempty"`
	ClusterID string `json:"cluster_id,omitempty"`
	// Subject is "" (every subject) or "store:N".
	Subject string `json:"subject,omitempty"`
	// Invariant is "" (every invariant) or an invariant name (alert:NAME
	// for alerts without one).
	Invariant string    `json:"invariant,omitempty"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	Reason    string    `json:"reason"`
	// CreatedBy, CreatedRole and CreatedVia are the authenticated identity
	// that made it ("config" for a maintenance window).
	CreatedBy   string    `json:"created_by"`
	CreatedRole string    `json:"created_role,omitempty"`
	CreatedVia  string    `json:"created_via,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	Hash        string    `json:"hash,omitempty"`
	Signature   string    `json:"signature,omitempty"`
	// Expired is set once someone expired it.
	Expired *SilenceExpiry `json:"expired,omitempty"`
}

// End returns when the silence stops muting: its expiry when earlier
// than EndsAt.
func (s Silence) End() time.Time {
	if s.Expired != nil && s.Expired.At.Before(s.EndsAt) {
		return s.Expired.At
	}
	return s.EndsAt
}

// ActiveAt reports whether the silence mutes at t (StartsAt <= t < End).
func (s Silence) ActiveAt(t time.Time) bool { return !t.Before(s.StartsAt) && t.Before(s.End()) }

// Matches reports whether the silence's scope covers a ticket of
// invariant about subject ("store:4", "region:12", "cluster").
func (s Silence) Matches(invariant, subject string) bool {
	return (s.Subject == "" || s.Subject == subject) && (s.Invariant == "" || strings.EqualFold(s.Invariant, invariant))
}

// Label names the silence in messages: "#N" or "maintenance window N".
func (s Silence) Label() string {
	if s.ID == 0 {
		return "maintenance window " + strconv.Itoa(s.Window)
	}
	return "#" + strconv.FormatInt(s.ID, 10)
}

// Scope renders the scope: "cluster", "store:4", "store_low_space",
// "store_low_space on store:4".
func (s Silence) Scope() string {
	switch {
	case s.Subject == "" && s.Invariant == "":
		return "cluster"
	case s.Invariant == "":
		return s.Subject
	case s.Subject == "":
		return s.Invariant
	}
	return s.Invariant + " on " + s.Subject
}

// Note is the one line a muted diagnosis or delivery carries:
// "silenced by #N until T (reason, by NAME)".
func (s Silence) Note() string {
	return fmt.Sprintf("silenced by %s until %s (%s, by %s)", s.Label(), s.End().UTC().Format(time.RFC3339),
		safetext.Line(s.Reason, 200), safetext.Line(s.CreatedBy, 64))
}

var storeSubject = regexp.MustCompile(`^store:[1-9][0-9]{0,19}$`)

// ValidateSilence checks a silence's scope and times: Subject "" or
// "store:N", Invariant "" or 1-128 printable characters, EndsAt after
// StartsAt by at most MaxSilence, a non-empty Reason. Errors wrap
// ErrInvalid.
func ValidateSilence(s Silence) error {
	if s.Subject != "" && !storeSubject.MatchString(s.Subject) {
		return fmt.Errorf("%w: silence scope %q: want store:N (N a store id)", ErrInvalid, safetext.Line(s.Subject, 64))
	}
	if len(s.Invariant) > 128 || (s.Invariant != "" && !safetext.Safe(s.Invariant)) || strings.ContainsAny(s.Invariant, " \t") {
		return fmt.Errorf("%w: silence invariant %q is not an invariant name", ErrInvalid, safetext.Line(s.Invariant, 64))
	}
	if s.StartsAt.IsZero() || s.EndsAt.IsZero() {
		return fmt.Errorf("%w: a silence needs a start and an end", ErrInvalid)
	}
	if !s.EndsAt.After(s.StartsAt) {
		return fmt.Errorf("%w: silence ends (%s) before it starts (%s)", ErrInvalid, s.EndsAt.Format(time.RFC3339), s.StartsAt.Format(time.RFC3339))
	}
	if s.EndsAt.Sub(s.StartsAt) > MaxSilence {
		return fmt.Errorf("%w: a silence lasts at most %s (31 days), this one %s", ErrInvalid, MaxSilence, s.EndsAt.Sub(s.StartsAt))
	}
	if strings.TrimSpace(s.Reason) == "" {
		return fmt.Errorf("%w: a silence needs a reason", ErrInvalid)
	}
	return nil
}

// SilenceHash is the SHA-256 (hex) of a silence's audited fields, each
// written as "name=LEN:VALUE\n" after the line "operator.silence.v1"
// (times as stored, UTC with nanoseconds). The signature is over
// "silence " + the hash.
func SilenceHash(s Silence) string {
	h := sha256.New()
	h.Write([]byte("operator.silence.v1\n"))
	writeField(h, "id", strconv.FormatInt(s.ID, 10))
	writeField(h, "cluster_id", s.ClusterID)
	writeField(h, "subject", s.Subject)
	writeField(h, "invariant", s.Invariant)
	writeField(h, "starts_at", hashTime(s.StartsAt))
	writeField(h, "ends_at", hashTime(s.EndsAt))
	writeField(h, "reason", s.Reason)
	writeField(h, "created_by", s.CreatedBy)
	writeField(h, "created_role", s.CreatedRole)
	writeField(h, "created_via", s.CreatedVia)
	writeField(h, "created_at", hashTime(s.CreatedAt))
	return hex.EncodeToString(h.Sum(nil))
}

// SilenceExpiryHash is the SHA-256 (hex) of an expiry's fields and of the
// hash of the silence it ends (same encoding as SilenceHash, first line
// "operator.silence_expiry.v1").
func SilenceExpiryHash(silenceID int64, silenceHash string, e SilenceExpiry) string {
	h := sha256.New()
	h.Write([]byte("operator.silence_expiry.v1\n"))
	writeField(h, "silence_id", strconv.FormatInt(silenceID, 10))
	writeField(h, "silence_hash", silenceHash)
	writeField(h, "expired_by", e.By)
	writeField(h, "expired_role", e.Role)
	writeField(h, "expired_via", e.Via)
	writeField(h, "reason", e.Reason)
	writeField(h, "expired_at", hashTime(e.At))
	return hex.EncodeToString(h.Sum(nil))
}

// silenceSigned is what the audit key signs for a silence or expiry hash
// (a prefix so that it can never be taken for a record's signature).
func silenceSigned(hash string) string { return "silence " + hash }

// OutboxSilence is the silence part of a silence event's payload.
type OutboxSilence struct {
	ID        int64     `json:"id"`
	Scope     string    `json:"scope"`
	Subject   string    `json:"subject,omitempty"`
	Invariant string    `json:"invariant,omitempty"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	Reason    string    `json:"reason"`
	By        string    `json:"by"`
	Role      string    `json:"role"`
}

// CreateSilence stores a new silence made by the authenticated identity
// in s.CreatedBy/CreatedRole/CreatedVia at now (ID, ClusterID, CreatedAt,
// Hash and Signature are set here), signed with the audit key, and
// enqueues its event silence/N/created in the same transaction. Reason is
// control-stripped and bounded to 1000 characters.
//
// Errors: ErrInvalid (ValidateSilence; no creator; an end not after now).
func (st *Store) CreateSilence(ctx context.Context, s Silence, now time.Time) (Silence, error) {
	s.Reason = safetext.Text(strings.TrimSpace(s.Reason), 1000)
	s.Subject, s.Invariant = strings.TrimSpace(s.Subject), strings.TrimSpace(s.Invariant)
	if err := ValidateSilence(s); err != nil {
		return Silence{}, fmt.Errorf("create silence: %w", err)
	}
	if strings.TrimSpace(s.CreatedBy) == "" {
		return Silence{}, fmt.Errorf("create silence: %w: no creator", ErrInvalid)
	}
	if !s.EndsAt.After(now) {
		return Silence{}, fmt.Errorf("create silence: %w: it would end (%s) before now", ErrInvalid, s.EndsAt.UTC().Format(time.RFC3339))
	}
	s.StartsAt, s.EndsAt, s.CreatedAt = s.StartsAt.UTC(), s.EndsAt.UTC(), now.UTC()
	s.Window, s.Expired = 0, nil
	if s.ClusterID == "" {
		s.ClusterID = st.ClusterID()
	}
	err := st.write(ctx, func(tx *sql.Tx) error {
		var last, seq sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT max(id) FROM silences`).Scan(&last); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT seq FROM `+st.seqTable()+` WHERE name = 'silences'`).Scan(&seq); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		s.ID = max(last.Int64, seq.Int64) + 1
		s.Hash = SilenceHash(s)
		s.Signature = ""
		if st.signer != nil {
			s.Signature = st.signer.Sign(silenceSigned(s.Hash))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO silences (id, cluster_id, subject, invariant, starts_at, ends_at, reason,
	created_by, created_role, created_via, created_at, hash, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ID, s.ClusterID, s.Subject, s.Invariant, fmtTime(s.StartsAt), fmtTime(s.EndsAt), s.Reason,
			s.CreatedBy, s.CreatedRole, s.CreatedVia, fmtTime(s.CreatedAt), s.Hash, s.Signature); err != nil {
			return fmt.Errorf("insert silence: %w", err)
		}
		return st.enqueue(ctx, tx, silenceEvent(KindSilenceCreated, s, s.CreatedBy, s.CreatedRole, now,
			fmt.Sprintf("silence %s created by %s (%s): %s muted from %s until %s: %s", s.Label(), s.CreatedBy, s.CreatedRole,
				s.Scope(), s.StartsAt.Format(time.RFC3339), s.EndsAt.Format(time.RFC3339), s.Reason)))
	})
	if err != nil {
		return Silence{}, fmt.Errorf("create silence: %w", err)
	}
	return s, nil
}

func silenceEvent(kind string, s Silence, by, role string, now time.Time, text string) OutboxEvent {
	suffix := "created"
	if kind == KindSilenceExpired {
		suffix = "expired"
	}
	return OutboxEvent{Key: "silence/" + strconv.FormatInt(s.ID, 10) + "/" + suffix, Kind: kind, Time: now, ClusterID: s.ClusterID,
		Text: text, Silence: &OutboxSilence{ID: s.ID, Scope: s.Scope(), Subject: s.Subject, Invariant: s.Invariant,
			StartsAt: s.StartsAt, EndsAt: s.EndsAt, Reason: s.Reason, By: by, Role: role}}
}

// ExpireSilence ends silence id at now, by the identity and for the
// reason in e (At, Hash and Signature are set here), signed, with its
// event silence/N/expired in the same transaction.
//
// Errors: ErrNotFound; ErrInvalid without a person or a reason;
// ErrSilenceOver when it was already expired or has ended.
func (st *Store) ExpireSilence(ctx context.Context, id int64, e SilenceExpiry, now time.Time) (Silence, error) {
	e.Reason = safetext.Text(strings.TrimSpace(e.Reason), 1000)
	if strings.TrimSpace(e.By) == "" || e.Reason == "" {
		return Silence{}, fmt.Errorf("expire silence %d: %w: a person and a reason are required", id, ErrInvalid)
	}
	e.At = now.UTC()
	var out Silence
	err := st.write(ctx, func(tx *sql.Tx) error {
		ss, err := querySilences(ctx, tx, `WHERE s.id = ?`, id)
		if err != nil {
			return err
		}
		if len(ss) == 0 {
			return fmt.Errorf("silence %d: %w", id, ErrNotFound)
		}
		s := ss[0]
		if s.Expired != nil {
			return fmt.Errorf("%w: silence %d was expired by %s at %s", ErrSilenceOver, id, s.Expired.By, s.Expired.At.Format(time.RFC3339))
		}
		if !now.Before(s.EndsAt) {
			return fmt.Errorf("%w: silence %d ended at %s", ErrSilenceOver, id, s.EndsAt.Format(time.RFC3339))
		}
		e.Hash = SilenceExpiryHash(s.ID, s.Hash, e)
		e.Signature = ""
		if st.signer != nil {
			e.Signature = st.signer.Sign(silenceSigned(e.Hash))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO silence_expiries (silence_id, expired_by, expired_role, expired_via, reason, expired_at, hash, signature)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, s.ID, e.By, e.Role, e.Via, e.Reason, fmtTime(e.At), e.Hash, e.Signature); err != nil {
			return fmt.Errorf("insert silence expiry: %w", err)
		}
		s.Expired = &e
		out = s
		return st.enqueue(ctx, tx, silenceEvent(KindSilenceExpired, s, e.By, e.Role, now,
			fmt.Sprintf("silence %s (%s, by %s) expired by %s (%s): %s", s.Label(), s.Scope(), s.CreatedBy, e.By, e.Role, e.Reason)))
	})
	if err != nil {
		return Silence{}, fmt.Errorf("expire silence %d: %w", id, err)
	}
	return out, nil
}

const silenceCols = `s.id, s.cluster_id, s.subject, s.invariant, s.starts_at, s.ends_at, s.reason, s.created_by, s.created_role,
	s.created_via, s.created_at, s.hash, s.signature,
	e.expired_by, e.expired_role, e.expired_via, e.reason, e.expired_at, e.hash, e.signature`

type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

func querySilences(ctx context.Context, q querier, where string, args ...any) ([]Silence, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+silenceCols+` FROM silences s LEFT JOIN silence_expiries e ON e.silence_id = s.id `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read silences: %w", err)
	}
	defer rows.Close()
	var out []Silence
	for rows.Next() {
		var (
			s                         Silence
			starts, ends, created     timeCol
			eBy, eRole, eVia, eReason sql.NullString
			eHash, eSig               sql.NullString
			eAt                       timeCol
		)
		if err := rows.Scan(&s.ID, &s.ClusterID, &s.Subject, &s.Invariant, &starts, &ends, &s.Reason, &s.CreatedBy, &s.CreatedRole,
			&s.CreatedVia, &created, &s.Hash, &s.Signature, &eBy, &eRole, &eVia, &eReason, &eAt, &eHash, &eSig); err != nil {
			return nil, fmt.Errorf("read silences: %w", err)
		}
		s.StartsAt, s.EndsAt, s.CreatedAt = starts.t, ends.t, created.t
		if eBy.Valid {
			s.Expired = &SilenceExpiry{By: eBy.String, Role: eRole.String, Via: eVia.String, Reason: eReason.String, At: eAt.t,
				Hash: eHash.String, Signature: eSig.String}
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// SilenceFilter selects silences for Silences.
type SilenceFilter struct {
	// ActiveAt, when not zero, keeps the silences muting at that time.
	ActiveAt time.Time
	// Limit caps the rows (newest first); 0 means 200.
	Limit int
}

// Silences lists silences made through the API, newest first.
func (st *Store) Silences(ctx context.Context, f SilenceFilter) ([]Silence, error) {
	if f.Limit <= 0 {
		f.Limit = 200
	}
	where, args := `ORDER BY s.id DESC LIMIT ?`, []any{f.Limit}
	if !f.ActiveAt.IsZero() {
		t := fmtTime(f.ActiveAt)
		where = `WHERE s.starts_at <= ? AND s.ends_at > ? AND (e.expired_at IS NULL OR e.expired_at > ?) ` + where
		args = append([]any{t, t, t}, args...)
	}
	return querySilences(ctx, st.db, where, args...)
}

// Silence returns silence id. Errors: ErrNotFound.
func (st *Store) Silence(ctx context.Context, id int64) (Silence, error) {
	ss, err := querySilences(ctx, st.db, `WHERE s.id = ?`, id)
	if err != nil {
		return Silence{}, err
	}
	if len(ss) == 0 {
		return Silence{}, fmt.Errorf("silence %d: %w", id, ErrNotFound)
	}
	return ss[0], nil
}

// SilenceMatcher finds the silence muting a ticket: the store's silences
// and the configured maintenance windows.
type SilenceMatcher struct {
	Store *Store
	// Windows are the configured [[maintenance]] windows (ID 0, Window N).
	Windows []Silence
}

// Match returns the silence that mutes a ticket of invariant about
// subject at now, among the windows and the silences of the store's
// cluster (a silence is tagged with the cluster of the daemon that made
// it; untagged ones mute every cluster) (of several, the one that ends last), or nil. Errors:
// the database could not be read.
func (m *SilenceMatcher) Match(ctx context.Context, invariant, subject string, now time.Time) (*Silence, error) {
	var best *Silence
	pick := func(s Silence) {
		if s.ActiveAt(now) && s.Matches(invariant, subject) && (best == nil || s.End().After(best.End())) {
			s := s
			best = &s
		}
	}
	for _, w := range m.Windows {
		pick(w)
	}
	if m.Store != nil {
		ss, err := m.Store.Silences(ctx, SilenceFilter{ActiveAt: now})
		if err != nil {
			return nil, err
		}
		own := m.Store.ClusterID()
		for _, s := range ss {
			// Silences are per cluster: one made through another
			// cluster's daemon does not mute this one's tickets.
			if s.ClusterID == "" || own == "" || s.ClusterID == own {
				pick(s)
			}
		}
	}
	return best, nil
}

// Silenceable reports whether a silence may mute ev: the ticket events
// (opened, escalated, resolved) and the approval requests of proposals
// the diagnosis made. Never people's decisions and execution outcomes,
// proposals a person made, silence events or audit verification failures:
// the team always sees who did what.
func Silenceable(ev OutboxEvent) bool {
	switch ev.Kind {
	case KindTicketOpened, KindTicketEscalated, KindTicketResolved:
		return ev.Ticket != nil
	case KindAwaitingApproval:
		return ev.Ticket != nil && ev.Action != nil && !strings.HasPrefix(ev.Action.ProposedBy, "user:")
	}
	return false
}

// SilenceDelivery marks a claimed (sending) delivery silenced by label
// ("#N" or "maintenance window N") with note as its last_error.
func (st *Store) SilenceDelivery(ctx context.Context, eventID int64, sink, label, note string, now time.Time) error {
	return st.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE outbox_deliveries SET status = 'silenced', silenced_by = ?, last_error = ?, in_doubt = 0, updated_at = ?
WHERE event_id = ? AND sink = ? AND status = 'sending'`, label, safetext.Text(note, 1000), fmtTime(now), eventID, sink)
		return err
	})
}

// ReleaseSilenced moves silenced deliveries back to pending (due now)
// when their ticket is not resolved and stillMuted(event) is false (no
// silence matches it any more), up to 200 per call, and returns how many.
// Deliveries of a ticket that resolved stay silenced for good: a problem
// that began and ended inside a maintenance window is never announced.
func (st *Store) ReleaseSilenced(ctx context.Context, now time.Time, stillMuted func(OutboxEvent) (bool, error)) (int, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT DISTINCT o.id, o.payload FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id
JOIN tickets t ON t.id = o.ticket_id WHERE d.status = 'silenced' AND t.status <> 'resolved' ORDER BY o.id LIMIT 200`)
	if err != nil {
		return 0, fmt.Errorf("release silenced: %w", err)
	}
	var evs []OutboxEvent
	for rows.Next() {
		var (
			id      int64
			payload string
		)
		if err := rows.Scan(&id, &payload); err != nil {
			rows.Close()
			return 0, err
		}
		var ev OutboxEvent
		if err := json.Unmarshal([]byte(payload), &ev); err != nil || ev.Ticket == nil {
			continue // not a ticket event: never silenced
		}
		ev.Seq = id
		evs = append(evs, ev)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, ev := range evs {
		muted, err := stillMuted(ev)
		if err != nil {
			return n, err
		}
		if muted {
			continue
		}
		err = st.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE outbox_deliveries SET status = 'pending', silenced_by = '', last_error = ?,
	next_attempt_at = ?, updated_at = ? WHERE event_id = ? AND status = 'silenced'
	AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ? AND t.status <> 'resolved')`,
				"released: the silence ended while the ticket was still open", fmtTime(now), fmtTime(now), ev.Seq, ev.Ticket.ID)
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			n += int(k)
			return err
		})
		if err != nil {
			return n, fmt.Errorf("release silenced: %w", err)
		}
	}
	return n, nil
}

// VerifySilences checks every silence and expiry row against its hash
// and (with pub) its signature, the ids against the sequence (a deleted
// silence), and the outbox's silence/N/expired events against the
// expiries (a deleted expiry would lengthen a mute). It returns the first
// defect, nil when none, and how many silences it checked.
func (st *Store) VerifySilences(ctx context.Context, pub *auditkey.PublicKey) (*Break, int, error) {
	var seq sql.NullInt64
	if err := st.db.QueryRowContext(ctx, `SELECT seq FROM `+st.seqTable()+` WHERE name = 'silences'`).Scan(&seq); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("verify silences: %w", err)
	}
	ss, err := querySilences(ctx, st.db, `ORDER BY s.id`)
	if err != nil {
		return nil, 0, fmt.Errorf("verify silences: %w", err)
	}
	var prev int64
	for _, s := range ss {
		if s.ID != prev+1 {
			return &Break{Kind: BreakMissing, Detail: fmt.Sprintf("silences %d..%d are missing (deleted)", prev+1, s.ID-1)}, int(prev), nil
		}
		prev = s.ID
		if got := SilenceHash(s); got != s.Hash {
			return &Break{Kind: BreakEdited, Detail: fmt.Sprintf("silence %d content does not match its hash (stored %.12s…, computed %.12s…): edited outside the daemon",
				s.ID, s.Hash, got)}, int(s.ID - 1), nil
		}
		if pub != nil && !pub.Verify(silenceSigned(s.Hash), s.Signature) {
			return &Break{Kind: BreakForged, Detail: fmt.Sprintf("silence %d signature does not verify with the audit public key: it was not written by the daemon", s.ID)}, int(s.ID - 1), nil
		}
		if e := s.Expired; e != nil {
			if got := SilenceExpiryHash(s.ID, s.Hash, *e); got != e.Hash {
				return &Break{Kind: BreakEdited, Detail: fmt.Sprintf("expiry of silence %d does not match its hash: edited outside the daemon", s.ID)}, int(s.ID - 1), nil
			}
			if pub != nil && !pub.Verify(silenceSigned(e.Hash), e.Signature) {
				return &Break{Kind: BreakForged, Detail: fmt.Sprintf("expiry of silence %d signature does not verify with the audit public key", s.ID)}, int(s.ID - 1), nil
			}
		}
	}
	if seq.Valid && seq.Int64 > prev {
		return &Break{Kind: BreakMissing, Detail: fmt.Sprintf("silences %d..%d were issued but are gone (deleted)", prev+1, seq.Int64)}, len(ss), nil
	}
	expired := map[int64]bool{}
	for _, s := range ss {
		if s.Expired != nil {
			expired[s.ID] = true
		}
	}
	rows, err := st.db.QueryContext(ctx, `SELECT key FROM outbox WHERE kind = ?`, KindSilenceExpired)
	if err != nil {
		return nil, len(ss), fmt.Errorf("verify silences: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			return nil, len(ss), err
		}
		id, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(key, "silence/"), "/expired"), 10, 64)
		if id > 0 && !expired[id] {
			return &Break{Kind: BreakMissing, Detail: fmt.Sprintf("silence %d was expired (event %s) but its expiry row is gone: the mute was lengthened", id, key)}, len(ss), nil
		}
	}
	return nil, len(ss), rows.Err()
}
