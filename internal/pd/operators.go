package pd

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// routeOperatorRecords is GET /pd/api/v1/operators/records (PD >= 4.0,
// server/api/operator.go:180-198 at v8.1).
const routeOperatorRecords = apiPrefix + "/operators/records"

// Finished operator outcomes as OperatorRecord.Outcome reports them.
const (
	// RecordSuccess: PD's rendering ends in " finished".
	RecordSuccess = "success"
	// RecordTimeout: PD's rendering ends in " timeout" (the step did not
	// finish within the operator's timeout).
	RecordTimeout = "timeout"
	// RecordOther: canceled, replaced or expired (PD renders no suffix).
	RecordOther = "other"
)

// maxRecordText bounds the stored text of one record (PD's strings are
// untrusted and may carry long step lists).
const maxRecordText = 512

// OperatorRecord is one finished PD operator from GET
// /pd/api/v1/operators/records?from=<unix seconds>, parsed from PD's
// rendering (pkg/schedule/operator/operator.go:125-140 and 486-488 at
// v8.1): `desc {brief} (kind:K, region:ID(ver, confver), createAt:T,
// startAt:T, currentStep:N, size:S, steps:[...], timeout:[...])[ finished|
// timeout] (finishAt:T, duration:D)`.
type OperatorRecord struct {
	RegionID uint64 `json:"region_id"`
	// Desc is the operator name, e.g. "transfer-hot-read-leader",
	// "admin-transfer-leader", "replace-rule-down-peer".
	Desc  string `json:"desc"`
	Brief string `json:"brief"`
	// Outcome is RecordSuccess, RecordTimeout or RecordOther.
	Outcome string `json:"outcome"`
	// TargetStoreIDs are the stores the steps move a leader or add a peer
	// to ("to store N", "add peer ... on store N", "add learner peer ... on
	// store N"), in order of appearance, without duplicates.
	TargetStoreIDs []uint64 `json:"target_store_ids,omitempty"`
	// FinishAt is PD's finishAt; zero when PD's text lacks it.
	FinishAt time.Time `json:"finish_at"`
	// CreateAt is PD's createAt; zero when absent.
	CreateAt time.Time `json:"create_at"`
	// Text is PD's rendering, control characters stripped, at most 512 bytes.
	Text string `json:"text"`
}

var (
	reRecordRegion = regexp.MustCompile(`region:(\d+)\(`)
	reRecordFinish = regexp.MustCompile(`finishAt:([^,]+),`)
	reRecordCreate = regexp.MustCompile(`createAt:([^,]+),`)
	reRecordTarget = regexp.MustCompile(`(?:to store|on store) (\d+)`)
)

// pdTimeLayout is how Go's time.Time.String renders PD's times, with the
// monotonic suffix removed.
const pdTimeLayout = "2006-01-02 15:04:05.999999999 -0700 MST"

func parsePDTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, " m="); i >= 0 {
		s = s[:i]
	}
	t, err := time.Parse(pdTimeLayout, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// ParseOperatorRecord parses one string of GET /operators/records. It
// fails when the text names no region.
func ParseOperatorRecord(text string) (OperatorRecord, error) {
	clean := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, text)
	m := reRecordRegion.FindStringSubmatch(clean)
	if m == nil {
		return OperatorRecord{}, errors.New("operator record: no region in " + strconv.Quote(truncate(clean, 120)))
	}
	id, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return OperatorRecord{}, errors.New("operator record: bad region id")
	}
	rec := OperatorRecord{RegionID: id, Outcome: RecordOther, Text: truncate(clean, maxRecordText)}
	if desc, rest, ok := strings.Cut(clean, " {"); ok {
		rec.Desc = truncate(strings.TrimSpace(desc), 100)
		if brief, _, ok := strings.Cut(rest, "} ("); ok {
			rec.Brief = truncate(brief, 200)
		}
	}
	body := clean
	if i := strings.LastIndex(clean, " (finishAt:"); i >= 0 {
		body = clean[:i]
		if f := reRecordFinish.FindStringSubmatch(clean[i:]); f != nil {
			rec.FinishAt = parsePDTime(f[1])
		}
	}
	switch {
	case strings.HasSuffix(body, " timeout"):
		rec.Outcome = RecordTimeout
	case strings.HasSuffix(body, " finished"):
		rec.Outcome = RecordSuccess
	}
	if c := reRecordCreate.FindStringSubmatch(body); c != nil {
		rec.CreateAt = parsePDTime(c[1])
	}
	seen := map[uint64]bool{}
	for _, t := range reRecordTarget.FindAllStringSubmatch(body, 16) {
		if sid, err := strconv.ParseUint(t[1], 10, 64); err == nil && !seen[sid] {
			seen[sid] = true
			rec.TargetStoreIDs = append(rec.TargetStoreIDs, sid)
		}
	}
	return rec, nil
}

// OperatorRecords returns the operators PD finished since from (GET
// /pd/api/v1/operators/records?from=<unix seconds>; PD keeps records for
// 10 minutes). PD answers 500 "operator not found" when there are none:
// that is an empty list here. Records PD renders without a region are
// skipped.
func (c *Client) OperatorRecords(ctx context.Context, from time.Time) ([]OperatorRecord, error) {
	path := routeOperatorRecords + "?from=" + strconv.FormatInt(from.Unix(), 10)
	var raw []string
	resp, err := c.do(ctx, http.MethodGet, routeOperatorRecords, path, nil, nil)
	if err != nil {
		if errors.Is(err, ErrOperatorNotFound) {
			return nil, nil
		}
		return nil, err
	}
	if err := json.Unmarshal(resp.body, &raw); err != nil {
		return nil, &DecodeError{Method: http.MethodGet, Path: path, Err: err}
	}
	out := make([]OperatorRecord, 0, len(raw))
	for _, s := range raw {
		if rec, err := ParseOperatorRecord(s); err == nil {
			out = append(out, rec)
		}
	}
	return out, nil
}
