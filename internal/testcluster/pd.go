package testcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
)

// PDVersionTag is the PD commit the cache folder is named after.
const PDVersionTag = "7179657d129b"

// ErrPDServerNotFound means pd-server could not be located or built.
var ErrPDServerNotFound = errors.New("testcluster: pd-server binary not available")

var buildOnce struct {
	sync.Mutex
	path string
}

// PDServerBin locates pd-server: $PD_SERVER_BIN, else the cache path of
// scripts/build-pd.sh (${OPERATOR_CACHE_DIR:-$HOME/.cache/operator}/pd-server-7179657d129b/pd-server),
// else it runs scripts/build-pd.sh (about two minutes on 2 cores). Errors
// wrap ErrPDServerNotFound with the build output.
func PDServerBin(ctx context.Context) (string, error) {
	if p := os.Getenv("PD_SERVER_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: PD_SERVER_BIN=%s: %v", ErrPDServerNotFound, p, err)
		}
		return p, nil
	}
	buildOnce.Lock()
	defer buildOnce.Unlock()
	if buildOnce.path != "" {
		return buildOnce.path, nil
	}
	cache := os.Getenv("OPERATOR_CACHE_DIR")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("%w: no home dir: %v", ErrPDServerNotFound, err)
		}
		cache = filepath.Join(home, ".cache", "operator")
	}
	bin := filepath.Join(cache, "pd-server-"+PDVersionTag, "pd-server")
	if fi, err := os.Stat(bin); err == nil && fi.Mode()&0o111 != 0 {
		buildOnce.path = bin
		return bin, nil
	}
	script, err := buildScript()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "bash", script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s failed: %v\n%s", ErrPDServerNotFound, script, err, tail(stderr.String(), 4000))
	}
	out := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	if _, err := os.Stat(out); err != nil {
		return "", fmt.Errorf("%w: build-pd.sh printed %q: %v", ErrPDServerNotFound, out, err)
	}
	buildOnce.path = out
	return out, nil
}

// buildScript finds scripts/build-pd.sh from this source file's location
// (tests run with the package dir as working dir).
func buildScript() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if ok {
		p := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "build-pd.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	dir, _ := os.Getwd()
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		p := filepath.Join(d, "scripts", "build-pd.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: scripts/build-pd.sh not found", ErrPDServerNotFound)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// freePorts returns n distinct free loopback TCP ports. It prefers ports
// below Linux's ephemeral range (32768-60999 by default): a port taken from
// ":0" is free now, but pd-server's own outbound connections (and those of
// other test processes) draw local ports from that range and can take it
// before pd-server binds it. Ports are verified free by binding them.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n && tries < 200; tries++ {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		ports = append(ports, port)
	}
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// addrInUse reports whether a pd-server failed to start because one of its
// ports was taken between freePorts and its bind.
func addrInUse(logPath string) bool {
	b, err := os.ReadFile(logPath)
	return err == nil && strings.Contains(string(b), "address already in use")
}

// DefaultPatrolRegionInterval is the schedule.patrol-region-interval the
// generated PD config sets unless Options.Schedule overrides it (PD's own
// default is 10ms).
const DefaultPatrolRegionInterval = 100 * time.Millisecond

// pdProcess is a running pd-server child process.
type pdProcess struct {
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	logPath string
}

// pdConfig renders the PD config TOML: the [schedule] and [replication]
// overrides, plus the scheduler list when a default scheduler is disabled
// (PD only adds its default schedulers when the list is empty:
// PD pkg/schedule/config/config.go adjustSchedulers).
func pdConfig(o Options) ([]byte, error) {
	schedule := map[string]any{
		// PD's default 10ms patrol walks 10k regions every ~0.8 s and costs
		// ~6% of a core at idle; 100ms keeps PD under 5% at 10k regions and
		// still covers a <= 128-region test cluster every 100 ms.
		"patrol-region-interval": DefaultPatrolRegionInterval.String(),
	}
	for k, v := range o.Schedule {
		if d, ok := v.(time.Duration); ok {
			v = d.String() // PD's TOML wants duration strings
		}
		schedule[k] = v
	}
	if o.MaxStoreDownTime > 0 {
		schedule["max-store-down-time"] = o.MaxStoreDownTime.String()
	}
	disabled := map[string]bool{}
	for _, s := range o.DisableSchedulers {
		disabled[strings.TrimSuffix(s, "-scheduler")] = true
	}
	if o.PauseBalanceLeader {
		disabled["balance-leader"] = true
	}
	if len(disabled) > 0 {
		// PD's DefaultSchedulers at 7179657d129b, as TOML types.
		var list []map[string]any
		for _, typ := range []string{"balance-region", "balance-leader", "hot-region", "evict-slow-store"} {
			list = append(list, map[string]any{"type": typ, "disable": disabled[typ]})
			delete(disabled, typ)
		}
		if len(disabled) > 0 {
			var names []string
			for k := range disabled {
				names = append(names, k)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("testcluster: cannot disable non-default schedulers %v (defaults: balance-region, balance-leader, hot-region, evict-slow-store)", names)
		}
		schedule["schedulers"] = list
	}
	cfg := map[string]any{
		"lease": 3,
		"log":   map[string]any{"level": "info"},
	}
	if len(schedule) > 0 {
		cfg["schedule"] = schedule
	}
	if len(o.Replication) > 0 {
		cfg["replication"] = o.Replication
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		return nil, fmt.Errorf("testcluster: encode PD config: %w", err)
	}
	return buf.Bytes(), nil
}

func startPD(bin, dir string, clientPort, peerPort int, configPath string) (*pdProcess, error) {
	logPath := filepath.Join(dir, "pd.log")
	client := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	cmd := exec.Command(bin,
		"--name", "pd1",
		"--data-dir", filepath.Join(dir, "data"),
		"--client-urls", client, "--advertise-client-urls", client,
		"--peer-urls", peer, "--advertise-peer-urls", peer,
		"--initial-cluster", "pd1="+peer,
		"--config", configPath,
		"--log-file", logPath,
	)
	cmd.Env = append(os.Environ(), "GODEBUG=httpmuxgo121=1")
	out, err := os.OpenFile(filepath.Join(dir, "pd.stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testcluster: %w", err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group so teardown kills pd-server and anything it spawns.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return nil, fmt.Errorf("testcluster: start pd-server: %w", err)
	}
	p := &pdProcess{cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() {
		p.waitErr = cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	return p, nil
}

// stop kills the process group: SIGTERM, then SIGKILL after grace.
func (p *pdProcess) stop(grace time.Duration) error {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("testcluster: pd-server pid %d did not exit", pgid)
		}
	}
	// Anything left in the group (there should be nothing) goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

func (p *pdProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitPDReady polls GET /pd/api/v1/version until PD answers.
func waitPDReady(ctx context.Context, c *Cluster, p *pdProcess) error {
	for {
		if p.exited() {
			return fmt.Errorf("testcluster: pd-server exited early: %v; log tail:\n%s", p.waitErr, logTail(p.logPath))
		}
		var v map[string]any
		if err := c.GetJSON(ctx, "/version", &v); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testcluster: wait for PD at %s: %w; log tail:\n%s", c.PDURL, ctx.Err(), logTail(p.logPath))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return tail(string(b), 3000)
}
