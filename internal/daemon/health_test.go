package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// hangingPD is a loopback TCP listener that accepts connections and never
// answers: a PD that hangs. It counts the connections it accepted.
func hangingPD(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			n.Add(1)
			conns = append(conns, c) // held open, never read nor answered
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "http://" + ln.Addr().String(), &n
}

// TestHealthzWhilePDHangs: with a PD that accepts connections and never
// answers, /healthz (liveness) answers 200 within a second, every time,
// while the monitor is stuck in a PD request; /readyz answers 503 naming
// PD (its checks are bounded by ReadyTimeout).
func TestHealthzWhilePDHangs(t *testing.T) {
	pdURL, accepted := hangingPD(t)
	cfg := testConfig(t, pdURL)
	cfg.PD.Timeout.Duration = 30 * time.Second // the monitor's cycle hangs for the whole test
	addr := make(chan string, 1)
	d, err := New(Options{Config: cfg, Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnListen: func(a string) { addr <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	go func() { _ = d.Run(ctx); close(exited) }()
	t.Cleanup(func() { cancel(); <-exited })
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-exited:
		t.Fatal("daemon exited")
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon's HTTP server did not start")
	}
	// The monitor is inside a cycle waiting on PD.
	waitFor(t, "the monitor's request to reach the hanging PD", 10*time.Second, func() bool { return accepted.Load() >= 2 })

	client := &http.Client{Timeout: time.Second}
	for i := range 5 {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			t.Fatalf("/healthz probe %d while PD hangs: %v", i, err)
		}
		var h Health
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil || h.Status != "ok" {
			t.Fatalf("/healthz probe %d: HTTP %d, %+v, %v", i, resp.StatusCode, h, err)
		}
		time.Sleep(300 * time.Millisecond)
	}

	rclient := &http.Client{Timeout: 3 * ReadyTimeout}
	resp, err := rclient.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("/readyz while PD hangs: %v", err)
	}
	defer resp.Body.Close()
	var rd Ready
	if err := json.NewDecoder(resp.Body).Decode(&rd); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || rd.Ready {
		t.Fatalf("/readyz: HTTP %d, %+v", resp.StatusCode, rd)
	}
	for _, c := range rd.Checks {
		switch c.Name {
		case "pd":
			if c.OK || c.Error == "" {
				t.Errorf("pd check %+v", c)
			}
		case "database":
			if !c.OK {
				t.Errorf("database check %+v", c)
			}
		}
	}
}
