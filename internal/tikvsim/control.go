package tikvsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	units "github.com/docker/go-units"
)

// maxControlBody caps control API request bodies.
const maxControlBody = 1 << 20

// Handler returns the simulator's HTTP control API (JSON in, JSON out).
// Serve it on loopback only. Routes (documented in docs/simulator.md):
//
//	GET  /healthz
//	GET  /v1/dump[?regions=false]
//	GET  /v1/stores                     GET /v1/stores/{id}
//	POST /v1/stores/{id}/stop           POST /v1/stores/{id}/start
//	POST /v1/stores/{id}/take-leaders   (leader skew onto the store)
//	POST /v1/stores/{id}/available      {"available": 1073741824 | "1GiB" | null}
//	POST /v1/stores/{id}/slow-score     {"score": 100}
//	POST /v1/stores/{id}/busy           {"busy": true}
//	POST /v1/stores/{id}/ignore-commands {"ignore": true}
//	POST /v1/stores                     {"address": "127.0.0.1:20161", "labels": {"host": "h1"}} (a new store)
//	GET  /v1/regions                    GET /v1/regions/{id}
//	POST /v1/regions/{id}/write-flow    {"bytes_per_sec": 10485760, "keys_per_sec": 1000}
//	POST /v1/regions/{id}/size          {"size": "200MiB", "keys": 2000000}
//	POST /v1/regions/{id}/silent        {"silent": true}
//	POST /v1/regions/{id}/peers/{store_id}/pending  {"pending": true}
//	POST /v1/regions/{id}/peers/{store_id}/down     {"down": true}
//
// Errors are {"error": "..."} with 400 (malformed JSON, bad value), 404
// (unknown store, region or peer), 405, or 409 (PD refused a new store,
// e.g. a duplicated address).
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /v1/dump", func(w http.ResponseWriter, r *http.Request) {
		with := true
		if v := r.URL.Query().Get("regions"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("regions=%q: want true or false", v))
				return
			}
			with = b
		}
		writeJSON(w, http.StatusOK, s.Dump(with))
	})
	mux.HandleFunc("GET /v1/stores", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Dump(false).Stores)
	})
	mux.HandleFunc("GET /v1/stores/{id}", s.withStore(func(w http.ResponseWriter, r *http.Request, id uint64) {
		v, err := s.Store(id)
		reply(w, v, err)
	}))
	mux.HandleFunc("POST /v1/stores/{id}/stop", s.withStore(func(w http.ResponseWriter, r *http.Request, id uint64) {
		s.replyStore(w, id, s.StopStore(id))
	}))
	mux.HandleFunc("POST /v1/stores/{id}/start", s.withStore(func(w http.ResponseWriter, r *http.Request, id uint64) {
		s.replyStore(w, id, s.StartStore(id))
	}))
	mux.HandleFunc("POST /v1/stores/{id}/take-leaders", s.withStore(func(w http.ResponseWriter, r *http.Request, id uint64) {
		n, err := s.MoveLeaders(id)
		if err != nil {
			reply(w, nil, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"moved": n})
	}))
	mux.HandleFunc("POST /v1/stores/{id}/available", s.withStore(func(w http.ResponseWriter, r *http.Request, id uint64) {
		var body struct {
			Available json.RawMessage `json:"available"`
		}
		if !decode(w, r, &body) {
			return
		}
		if len(body.Available) == 0 {
			writeError(w, http.StatusBadRequest, errors.New(`missing "available" (bytes as a number or "10GiB", or null to reset)`))
			return
		}
		if string(body.Available) == "null" {
			s.replyStore(w, id, s.ResetAvailable(id))
			return
		}
		n, err := parseBytes(body.Available)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("available: %w", err))
			return
		}
		s.replyStore(w, id, s.SetAvailable(id, n))
	}))
	mux.HandleFunc("POST /v1/stores/{id}/slow-score", s.withStore(func(w http.ResponseWriter, r *http.Request, id uint64) {
		var body struct {
			Score *uint64 `json:"score"`
		}
		if !decode(w, r, &body) {
			return
		}
		if body.Score == nil {
			writeError(w, http.StatusBadRequest, errors.New(`missing "score" (0..100)`))
			return
		}
		s.replyStore(w, id, s.SetSlowScore(id, *body.Score))
	}))
	mux.HandleFunc("POST /v1/stores/{id}/busy", s.withStore(func(w http.ResponseWriter, r *http.Request, id uint64) {
		var body struct {
			Busy *bool `json:"busy"`
		}
		if !decode(w, r, &body) {
			return
		}
		if body.Busy == nil {
			writeError(w, http.StatusBadRequest, errors.New(`missing "busy" (true or false)`))
			return
		}
		s.replyStore(w, id, s.SetBusy(id, *body.Busy))
	}))
	mux.HandleFunc("POST /v1/stores/{id}/ignore-commands", s.withStore(func(w http.ResponseWriter, r *http.Request, id uint64) {
		var body struct {
			Ignore *bool `json:"ignore"`
		}
		if !decode(w, r, &body) {
			return
		}
		if body.Ignore == nil {
			writeError(w, http.StatusBadRequest, errors.New(`missing "ignore" (true or false)`))
			return
		}
		s.replyStore(w, id, s.SetIgnoreCommands(id, *body.Ignore))
	}))
	mux.HandleFunc("POST /v1/stores", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Address string            `json:"address"`
			Labels  map[string]string `json:"labels"`
		}
		if !decode(w, r, &body) {
			return
		}
		id, err := s.AddStore(r.Context(), body.Address, body.Labels)
		if err != nil {
			var pe *PDError
			if errors.As(err, &pe) {
				writeError(w, http.StatusConflict, err)
				return
			}
			reply(w, nil, err)
			return
		}
		s.replyStore(w, id, nil)
	})
	mux.HandleFunc("POST /v1/regions/{id}/silent", s.withRegion(func(w http.ResponseWriter, r *http.Request, id uint64) {
		var body struct {
			Silent *bool `json:"silent"`
		}
		if !decode(w, r, &body) {
			return
		}
		if body.Silent == nil {
			writeError(w, http.StatusBadRequest, errors.New(`missing "silent" (true or false)`))
			return
		}
		s.replyRegion(w, id, s.SetRegionSilent(id, *body.Silent))
	}))
	mux.HandleFunc("GET /v1/regions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Dump(true).Regions)
	})
	mux.HandleFunc("GET /v1/regions/{id}", s.withRegion(func(w http.ResponseWriter, r *http.Request, id uint64) {
		v, err := s.Region(id)
		reply(w, v, err)
	}))
	mux.HandleFunc("POST /v1/regions/{id}/write-flow", s.withRegion(func(w http.ResponseWriter, r *http.Request, id uint64) {
		var body struct {
			BytesPerSec json.RawMessage `json:"bytes_per_sec"`
			KeysPerSec  uint64          `json:"keys_per_sec"`
		}
		if !decode(w, r, &body) {
			return
		}
		var bps uint64
		if len(body.BytesPerSec) > 0 {
			var err error
			if bps, err = parseBytes(body.BytesPerSec); err != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("bytes_per_sec: %w", err))
				return
			}
		}
		s.replyRegion(w, id, s.SetWriteFlow(id, bps, body.KeysPerSec))
	}))
	mux.HandleFunc("POST /v1/regions/{id}/size", s.withRegion(func(w http.ResponseWriter, r *http.Request, id uint64) {
		var body struct {
			Size json.RawMessage `json:"size"`
			Keys *uint64         `json:"keys"`
		}
		if !decode(w, r, &body) {
			return
		}
		if len(body.Size) == 0 || body.Keys == nil {
			writeError(w, http.StatusBadRequest, errors.New(`want {"size": bytes or "200MiB", "keys": N}`))
			return
		}
		n, err := parseBytes(body.Size)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("size: %w", err))
			return
		}
		s.replyRegion(w, id, s.SetRegionSize(id, n, *body.Keys))
	}))
	mux.HandleFunc("POST /v1/regions/{id}/peers/{store}/pending", s.withPeer(func(w http.ResponseWriter, r *http.Request, region, store uint64) {
		var body struct {
			Pending *bool `json:"pending"`
		}
		if !decode(w, r, &body) {
			return
		}
		if body.Pending == nil {
			writeError(w, http.StatusBadRequest, errors.New(`missing "pending" (true or false)`))
			return
		}
		s.replyRegion(w, region, s.SetPeerPending(region, store, *body.Pending))
	}))
	mux.HandleFunc("POST /v1/regions/{id}/peers/{store}/down", s.withPeer(func(w http.ResponseWriter, r *http.Request, region, store uint64) {
		var body struct {
			Down *bool `json:"down"`
		}
		if !decode(w, r, &body) {
			return
		}
		if body.Down == nil {
			writeError(w, http.StatusBadRequest, errors.New(`missing "down" (true or false)`))
			return
		}
		s.replyRegion(w, region, s.SetPeerDown(region, store, *body.Down))
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no route %s %s; see docs/simulator.md", r.Method, r.URL.Path))
	})
	return mux
}

func pathID(r *http.Request, name string) (uint64, error) {
	v := r.PathValue(name)
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("%s %q: want a positive integer", name, v)
	}
	return id, nil
}

func (s *Sim) withStore(h func(http.ResponseWriter, *http.Request, uint64)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "id")
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("store %w", err))
			return
		}
		h(w, r, id)
	}
}

func (s *Sim) withRegion(h func(http.ResponseWriter, *http.Request, uint64)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r, "id")
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("region %w", err))
			return
		}
		h(w, r, id)
	}
}

func (s *Sim) withPeer(h func(http.ResponseWriter, *http.Request, uint64, uint64)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		region, err := pathID(r, "id")
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("region %w", err))
			return
		}
		store, err := pathID(r, "store")
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		h(w, r, region, store)
	}
}

// replyStore answers with the store's new view, or the error.
func (s *Sim) replyStore(w http.ResponseWriter, id uint64, err error) {
	if err != nil {
		reply(w, nil, err)
		return
	}
	v, err := s.Store(id)
	reply(w, v, err)
}

// replyRegion answers with the region's new view, or the error.
func (s *Sim) replyRegion(w http.ResponseWriter, id uint64, err error) {
	if err != nil {
		reply(w, nil, err)
		return
	}
	v, err := s.Region(id)
	reply(w, v, err)
}

func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, ErrStoreNotFound), errors.Is(err, ErrRegionNotFound), errors.Is(err, ErrPeerNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, ErrInvalidArgument):
		writeError(w, http.StatusBadRequest, err)
	default:
		writeError(w, http.StatusInternalServerError, err)
	}
}

// decode reads a JSON object body, rejecting unknown fields and trailing
// data; on failure it writes a 400 and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("read body: %w", err))
		return false
	}
	if len(bytes.TrimSpace(b)) == 0 {
		b = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("malformed JSON body: %w", err))
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, errors.New("malformed JSON body: trailing data"))
		return false
	}
	return true
}

// parseBytes accepts a JSON number of bytes or a string like "10GiB"/"512MB"
// (docker/go-units RAMInBytes: binary units).
func parseBytes(raw json.RawMessage) (uint64, error) {
	var n uint64
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("%s: want bytes as a non-negative integer or a string like \"10GiB\"", raw)
	}
	v, err := units.RAMInBytes(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: want a size like \"10GiB\"", s)
	}
	return uint64(v), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
