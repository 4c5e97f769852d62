package replay

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PD's answers for what it does not know (PD v8.1, commit 7179657d129b):
// unregistered routes get gorilla/mux's default 404 (Go's
// http.NotFound text); the error strings are errs.* rendered by
// server/api (store.go:71, operator.go:58).
const (
	pdNotFoundText      = "404 page not found\n"
	pdStoreNotFound     = "[PD:core:ErrStoreNotFound]store %d not found"
	pdOperatorNotFound  = "[PD:operator:ErrOperatorNotFound]operator not found"
	promEmptyVectorData = `{"resultType":"vector","result":[]}`
	promEmptyMatrixData = `{"resultType":"matrix","result":[]}`
)

// entry is one served endpoint of the current step.
type entry struct {
	path  string
	query url.Values
	resp  Response
}

// pdServer is a loopback HTTP server answering like PD from a tape's
// current step, with PD's clock (the Date header) set by the runner.
type pdServer struct {
	srv  *httptest.Server
	prom *httptest.Server

	mu       sync.Mutex
	now      time.Time
	entries  []entry                    // current step, cumulative
	promData map[string]json.RawMessage // current step, cumulative
	unserved map[string]bool            // requests answered 404 for lack of data
	requests int
}

// newPDServer starts the fake PD (and, when withProm, a fake Prometheus)
// on 127.0.0.1.
func newPDServer(withProm bool) *pdServer {
	s := &pdServer{unserved: map[string]bool{}, promData: map[string]json.RawMessage{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.servePD))
	if withProm {
		s.prom = httptest.NewServer(http.HandlerFunc(s.serveProm))
	}
	return s
}

func (s *pdServer) close() {
	s.srv.Close()
	if s.prom != nil {
		s.prom.Close()
	}
}

// setStep installs the cumulative state of a step at PD time now.
func (s *pdServer) setStep(pdState map[string]Response, prom map[string]json.RawMessage, now time.Time) error {
	entries := make([]entry, 0, len(pdState))
	keys := make([]string, 0, len(pdState))
	for k := range pdState {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, q, err := parseKey(k)
		if err != nil {
			return err
		}
		entries = append(entries, entry{path: p, query: q, resp: pdState[k]})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries, s.promData, s.now = entries, prom, now
	return nil
}

// Unserved returns the requests (method path?query) the tape held no
// answer for, sorted.
func (s *pdServer) Unserved() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.unserved))
	for k := range s.unserved {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *pdServer) servePD(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	w.Header().Set("Date", s.now.UTC().Format(http.TimeFormat))
	if r.Method != http.MethodGet {
		// A replay never changes the cluster: the runner approves nothing,
		// so only dry runs (reads) reach PD. A mutation is a harness bug.
		s.unserved[r.Method+" "+r.URL.RequestURI()] = true
		writeJSON(w, http.StatusMethodNotAllowed, json.RawMessage(`"replay: PD is read-only"`))
		return
	}
	if e, ok := s.lookup(r.URL.Path, r.URL.Query()); ok {
		writeResponse(w, e.resp)
		return
	}
	if resp, ok := s.derive(r.URL.Path); ok {
		writeResponse(w, resp)
		return
	}
	s.unserved["GET "+r.URL.RequestURI()] = true
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(pdNotFoundText))
}

// lookup finds the entry for path and query: same path, same query keys,
// each value equal (multi-valued params compared as sorted lists) or "*".
func (s *pdServer) lookup(path string, q url.Values) (entry, bool) {
	for _, e := range s.entries {
		if e.path == path && queryMatches(e.query, q) {
			return e, true
		}
	}
	return entry{}, false
}

func queryMatches(want, got url.Values) bool {
	if len(want) != len(got) {
		return false
	}
	for k, wv := range want {
		gv, ok := got[k]
		if !ok {
			return false
		}
		if len(wv) == 1 && wv[0] == "*" {
			continue
		}
		a, b := slices.Clone(wv), slices.Clone(gv)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			return false
		}
	}
	return true
}

// derive answers endpoints that are a view of others PD holds in the same
// state, exactly as PD would: GET /store/{id} from the store lists, GET
// /region/id/{id} from any region list of the step (an unknown id is PD's
// 200 with "id": 0), GET /operators/{id} from GET /operators?object.
func (s *pdServer) derive(path string) (Response, bool) {
	rest, ok := strings.CutPrefix(path, APIPrefix+"/")
	if !ok {
		return Response{}, false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 2 && parts[0] == "store":
		id, err := strconv.ParseUint(parts[1], 10, 64)
		if err != nil {
			return Response{}, false
		}
		for _, raw := range s.bodies(APIPrefix+"/stores", APIPrefix+"/stores/check") {
			var list struct {
				Stores []json.RawMessage `json:"stores"`
			}
			if json.Unmarshal(raw, &list) != nil {
				continue
			}
			for _, st := range list.Stores {
				var meta struct {
					Store struct {
						ID uint64 `json:"id"`
					} `json:"store"`
				}
				if json.Unmarshal(st, &meta) == nil && meta.Store.ID == id {
					return Response{Body: st}, true
				}
			}
		}
		if len(s.bodies(APIPrefix+"/stores")) == 0 {
			return Response{}, false
		}
		msg, _ := json.Marshal(fmt.Sprintf(pdStoreNotFound, id))
		return Response{Status: http.StatusNotFound, Body: msg}, true
	case len(parts) == 3 && parts[0] == "region" && parts[1] == "id":
		id, err := strconv.ParseUint(parts[2], 10, 64)
		if err != nil {
			return Response{}, false
		}
		if r, ok := s.findRegion(id); ok {
			return Response{Body: r}, true
		}
		return Response{}, false
	case len(parts) == 2 && parts[0] == "operators":
		id, err := strconv.ParseUint(parts[1], 10, 64)
		if err != nil {
			return Response{}, false
		}
		raws := s.bodies(APIPrefix + "/operators")
		if len(raws) == 0 {
			return Response{}, false
		}
		for _, raw := range raws {
			var ops []struct {
				Desc     string `json:"desc"`
				Brief    string `json:"brief"`
				RegionID uint64 `json:"region_id"`
			}
			if json.Unmarshal(raw, &ops) != nil {
				continue
			}
			for _, op := range ops {
				if op.RegionID == id {
					b, _ := json.Marshal(fmt.Sprintf("status: RUNNING, operator: \"%s {%s} (region:%d)\"", op.Desc, op.Brief, id))
					return Response{Body: b}, true
				}
			}
		}
		msg, _ := json.Marshal(pdOperatorNotFound)
		return Response{Status: http.StatusInternalServerError, Body: msg}, true
	}
	return Response{}, false
}

// bodies returns the 2xx JSON bodies of the entries with one of paths.
func (s *pdServer) bodies(paths ...string) []json.RawMessage {
	var out []json.RawMessage
	for _, e := range s.entries {
		if slices.Contains(paths, e.path) && (e.resp.Status == 0 || e.resp.Status/100 == 2) && len(e.resp.Body) > 0 {
			out = append(out, e.resp.Body)
		}
	}
	return out
}

// findRegion looks for region id in every region list and region object
// of the step (regions/check/*, regions/store/*, region/id/*, ...).
func (s *pdServer) findRegion(id uint64) (json.RawMessage, bool) {
	type idOnly struct {
		ID uint64 `json:"id"`
	}
	for _, e := range s.entries {
		if !strings.HasPrefix(e.path, APIPrefix+"/region") || len(e.resp.Body) == 0 ||
			(e.resp.Status != 0 && e.resp.Status/100 != 2) {
			continue
		}
		var list struct {
			Regions []json.RawMessage `json:"regions"`
		}
		if json.Unmarshal(e.resp.Body, &list) == nil && list.Regions != nil {
			for _, r := range list.Regions {
				var x idOnly
				if json.Unmarshal(r, &x) == nil && x.ID == id {
					return r, true
				}
			}
			continue
		}
		var x idOnly
		if json.Unmarshal(e.resp.Body, &x) == nil && x.ID == id {
			return e.resp.Body, true
		}
	}
	return nil, false
}

func writeResponse(w http.ResponseWriter, r Response) {
	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	if r.Text != "" || len(r.Body) == 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(r.Text))
		return
	}
	writeJSON(w, status, r.Body)
}

func writeJSON(w http.ResponseWriter, status int, body json.RawMessage) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// serveProm answers Prometheus' instant and range query APIs from the
// step's Prometheus map; unknown queries get an empty result.
func (s *pdServer) serveProm(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, json.RawMessage(`{"status":"error","errorType":"bad_data","error":"bad form"}`))
		return
	}
	q := strings.TrimSpace(r.Form.Get("query"))
	s.mu.Lock()
	data, ok := s.promData[q]
	s.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/api/v1/query") && ok:
	case strings.HasSuffix(r.URL.Path, "/api/v1/query"):
		data = json.RawMessage(promEmptyVectorData)
	case strings.HasSuffix(r.URL.Path, "/api/v1/query_range"):
		data = json.RawMessage(promEmptyMatrixData)
	default:
		http.NotFound(w, r)
		return
	}
	body, _ := json.Marshal(struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}{"success", data})
	writeJSON(w, http.StatusOK, body)
}
