package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/ticket"
)

// observeMany observes perWriter times, cycling over keys, and returns the
// first error.
func observeMany(ctx context.Context, s *Store, writer, perWriter, keys int) error {
	for i := 0; i < perWriter; i++ {
		o := obs("store_down", fmt.Sprintf("store:%d", i%keys), fmt.Sprintf(`{"writer":%d,"i":%d}`, writer, i))
		if _, _, err := s.Observe(ctx, o, t0.Add(time.Duration(i)*time.Millisecond)); err != nil {
			return fmt.Errorf("writer %d observation %d: %w", writer, i, err)
		}
	}
	return nil
}

// checkObserved asserts exactly one ticket per key and total occurrences.
func checkObserved(t *testing.T, s *Store, keys int, total int64) {
	t.Helper()
	all, err := s.Tickets(context.Background(), TicketFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != keys {
		t.Errorf("%d tickets, want %d (one per key)", len(all), keys)
	}
	var sum int64
	seen := map[string]bool{}
	for _, tk := range all {
		if seen[tk.Key] {
			t.Errorf("two tickets for %s", tk.Key)
		}
		seen[tk.Key] = true
		sum += tk.Occurrences
	}
	if sum != total {
		t.Errorf("occurrences sum to %d, want %d: writes were lost", sum, total)
	}
}

// TestConcurrentObserveTwoHandles: writers on two handles of one file (as
// two processes) observe the same keys at once; nothing is lost, nothing
// is duplicated, and no write fails with "database is locked".
func TestConcurrentObserveTwoHandles(t *testing.T) {
	forEachBackend(t, testConcurrentObserveTwoHandles)
}

func testConcurrentObserveTwoHandles(t *testing.T, be backend) {
	s1, path := be.openTemp(t)
	s2 := openAt(t, path)
	const writersPerHandle, perWriter, keys = 4, 50, 7
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 2*writersPerHandle)
	for w := 0; w < 2*writersPerHandle; w++ {
		h := s1
		if w%2 == 1 {
			h = s2
		}
		wg.Add(1)
		go func(w int, h *Store) {
			defer wg.Done()
			errs <- observeMany(ctx, h, w, perWriter, keys)
		}(w, h)
	}
	// A reader keeps listing meanwhile, as a CLI would.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			if _, err := s2.Tickets(ctx, TicketFilter{Statuses: []ticket.Status{ticket.Open}}); err != nil {
				errs <- fmt.Errorf("reader: %w", err)
				return
			}
		}
	}()
	wg.Wait()
	<-done
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	checkObserved(t, s1, keys, 2*writersPerHandle*perWriter)
}

// TestConcurrentObserveProcesses runs the writers in separate OS
// processes (this test binary re-executed), the real daemon + CLI case.
func TestConcurrentObserveProcesses(t *testing.T) { forEachBackend(t, testConcurrentObserveProcesses) }

func testConcurrentObserveProcesses(t *testing.T, be backend) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := be.target(t)
	const procs, perWriter, keys = 3, 60, 5
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for p := 0; p < procs; p++ {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperObserveProcess$", "-test.v")
		cmd.Env = append(os.Environ(),
			"STORE_HELPER_DB="+path,
			"STORE_HELPER_WRITER="+strconv.Itoa(p),
			"STORE_HELPER_N="+strconv.Itoa(perWriter),
			"STORE_HELPER_KEYS="+strconv.Itoa(keys))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("writer process %d: %v\n%s", i, err, outs[i])
		}
	}
	s := openAt(t, path)
	checkObserved(t, s, keys, procs*perWriter)
}

// TestHelperObserveProcess is the child side of
// TestConcurrentObserveProcesses; it does nothing in a normal run.
func TestHelperObserveProcess(t *testing.T) {
	path := os.Getenv("STORE_HELPER_DB")
	if path == "" {
		t.Skip("helper process only")
	}
	w, _ := strconv.Atoi(os.Getenv("STORE_HELPER_WRITER"))
	n, _ := strconv.Atoi(os.Getenv("STORE_HELPER_N"))
	keys, _ := strconv.Atoi(os.Getenv("STORE_HELPER_KEYS"))
	s := openAt(t, path) // every child may be the one that creates and migrates
	if err := observeMany(context.Background(), s, w, n, keys); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentSweepAndObserve: the monitor's Observe/Sweep on one handle
// and a CLI resolving tickets on another never break the one-active-ticket
// rule.
func TestConcurrentSweepAndObserve(t *testing.T) { forEachBackend(t, testConcurrentSweepAndObserve) }

func testConcurrentSweepAndObserve(t *testing.T, be backend) {
	s1, path := be.openTemp(t)
	s2 := openAt(t, path)
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 100; i++ {
			now := t0.Add(time.Duration(i) * time.Second)
			if i%3 == 0 {
				if _, _, err := s1.Observe(ctx, obs("store_down", "store:1", `{}`), now); err != nil {
					t.Error(err)
					return
				}
			} else if _, err := s1.Sweep(ctx, []string{"store_down"}, nil, now, 0); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 100; i++ {
			tk, err := s2.OpenTicket(ctx, "store_down/store:1")
			if err != nil {
				continue
			}
			if err := s2.ResolveTicket(ctx, tk.ID, t0); err != nil {
				var te *ticket.ErrTransition
				if !errors.As(err, &te) {
					t.Error(err)
					return
				}
			}
		}
	}()
	wg.Wait()
	var active int
	if err := s1.db.QueryRowContext(ctx, `SELECT count(*) FROM tickets WHERE status <> 'resolved'`).Scan(&active); err != nil {
		t.Fatal(err)
	}
	if active > 1 {
		t.Errorf("%d active tickets for one key", active)
	}
}
