package pd

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestNotAvailable404: a route PD's router does not have (PD 3.0 has no
// regions/check/oversized-region) answers gorilla/mux's "404 page not
// found", which is ErrNotAvailable; a 404 PD renders for an unknown store
// stays ErrStoreNotFound.
func TestNotAvailable404(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/pd/api/v1/store/9":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`"store 9 not found"`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := New([]string{srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.CheckRegions(ctx, "oversized-region"); !errors.Is(err, ErrNotAvailable) {
		t.Errorf("check on a PD without the route: %v, want ErrNotAvailable", err)
	}
	if _, err := c.OperatorRecords(ctx, time.Unix(0, 0)); err != nil && !errors.Is(err, ErrNotAvailable) {
		t.Errorf("records: %v", err)
	}
	if _, err := c.Store(ctx, 9); !errors.Is(err, ErrStoreNotFound) || errors.Is(err, ErrNotAvailable) {
		t.Errorf("unknown store: %v, want ErrStoreNotFound only", err)
	}
	if _, err := c.Stores(ctx); !errors.Is(err, ErrNotPD) || errors.Is(err, ErrNotAvailable) {
		t.Errorf("/stores 404: %v, want ErrNotPD", err)
	}
}
