package console

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/store"
)

// hub polls the store's change mark while at least one page listens and
// fans "changed" events out to every listener: one query per Poll however
// many pages are open.
type hub struct {
	st   *store.Store
	poll time.Duration
	log  *slog.Logger

	mu      sync.Mutex
	subs    map[chan string]bool
	running bool
	mark    string
}

func newHub(st *store.Store, poll time.Duration, log *slog.Logger) *hub {
	return &hub{st: st, poll: poll, log: log, subs: map[chan string]bool{}}
}

func (h *hub) subscribe() (chan string, string) {
	ch := make(chan string, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[ch] = true
	if !h.running {
		h.running = true
		go h.run()
	}
	return ch, h.mark
}

func (h *hub) unsubscribe(ch chan string) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}

// run polls until nobody listens.
func (h *hub) run() {
	t := time.NewTicker(h.poll)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		mark, err := h.st.ChangeMark(ctx)
		cancel()
		h.mu.Lock()
		if len(h.subs) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		if err != nil {
			h.log.Warn("console live updates: reading the change mark", "err", err)
		} else if mark != h.mark {
			h.mark = mark
			for ch := range h.subs {
				select {
				case ch <- mark:
				default: // a pending event already tells this page to refresh
				}
			}
		}
		h.mu.Unlock()
		<-t.C
	}
}

// serve streams events to one page until it goes away or alive says the
// session ended: "event: changed" with the mark whenever the store
// changes, a comment every 15 s to keep proxies from closing the stream.
func (h *hub) serve(w http.ResponseWriter, r *http.Request, alive func() bool) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch, last := h.subscribe()
	defer h.unsubscribe(ch)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n: operator console live updates\n\n")
	fl.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case m := <-ch:
			if m == last {
				continue
			}
			last = m
			if _, err := fmt.Fprintf(w, "event: changed\ndata: %s\n\n", m); err != nil {
				return
			}
			fl.Flush()
		case <-keep.C:
			if !alive() {
				return
			}
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
