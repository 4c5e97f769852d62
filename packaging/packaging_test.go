// Package packaging holds the install files (systemd unit) and the tests
// of what can be checked here of the release story: scripts/release.sh
// builds static, versioned binaries with checksums, the Dockerfile builds
// with the same flags as a non-root multi-stage image, and the systemd
// unit passes systemd-analyze verify.
package packaging

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// releaseBinary runs scripts/release.sh once per test binary and returns
// the dist directory and the linux/amd64 binary. Only linux/amd64 is built
// unless OPERATOR_TEST_RELEASE_ALL=1 (arm64 compiles every dependency
// again: minutes on 2 cores).
func releaseBinary(t *testing.T) (dist, bin string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds release binaries")
	}
	platforms := "linux/amd64"
	if os.Getenv("OPERATOR_TEST_RELEASE_ALL") == "1" {
		platforms = "linux/amd64 linux/arm64"
	}
	dist = t.TempDir()
	cmd := exec.Command("scripts/release.sh")
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION=v9.9.9-test", "PLATFORMS="+platforms)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}
	bin = filepath.Join(dist, "operator-v9.9.9-test-linux-amd64")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("release.sh did not write %s:\n%s", bin, out)
	}
	if strings.Contains(platforms, "arm64") {
		if _, err := os.Stat(filepath.Join(dist, "operator-v9.9.9-test-linux-arm64")); err != nil {
			t.Fatal(err)
		}
	}
	return dist, bin
}

func TestReleaseBinaryIsStaticAndStamped(t *testing.T) {
	dist, bin := releaseBinary(t)

	// Checksums verify.
	sum := exec.Command("sha256sum", "-c", "SHA256SUMS")
	sum.Dir = dist
	if out, err := sum.CombinedOutput(); err != nil || !strings.Contains(string(out), "operator-v9.9.9-test-linux-amd64: OK") {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}

	// Static: no cgo, no dynamic loader.
	mv, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath=true"} {
		if !strings.Contains(string(mv), want) {
			t.Errorf("go version -m lacks %s:\n%s", want, mv)
		}
	}
	if f, err := exec.LookPath("file"); err == nil {
		out, _ := exec.Command(f, bin).CombinedOutput()
		if !strings.Contains(string(out), "statically linked") {
			t.Errorf("file: %s", out)
		}
	} else {
		t.Log("file(1) not installed; relying on go version -m")
	}

	// Stamped: the version given to release.sh and the commit.
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Version, Commit string }
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if info.Version != "v9.9.9-test" {
		t.Errorf("version %q, want v9.9.9-test", info.Version)
	}
	if head, err := exec.Command("git", "-C", root(t), "rev-parse", "HEAD").Output(); err == nil {
		if want := strings.TrimSpace(string(head)); info.Commit != want {
			t.Errorf("commit %q, want %q", info.Commit, want)
		}
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(s, -1)); n < 2 {
		t.Errorf("%d stages, want a multi-stage build", n)
	}
	rel, _ := os.ReadFile(filepath.Join(root(t), "scripts/release.sh"))
	for _, flag := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w"} {
		if !strings.Contains(s, flag) || !strings.Contains(string(rel), flag) {
			t.Errorf("Dockerfile and release.sh must both build with %s", flag)
		}
	}
	m := regexp.MustCompile(`(?m)^USER (\S+)`).FindAllStringSubmatch(s, -1)
	if len(m) == 0 {
		t.Fatal("no USER: the image would run as root")
	}
	if u := m[len(m)-1][1]; u == "root" || u == "0" || strings.HasPrefix(u, "0:") {
		t.Errorf("final USER %s is root", u)
	}
	if !strings.Contains(s, "static") {
		t.Errorf("final stage is not a static base image")
	}
}

func TestSystemdUnitVerifies(t *testing.T) {
	unit, err := os.ReadFile("operator.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"CapabilityBoundingSet=", "StateDirectory=operator", "User=operator", "SystemCallFilter=@system-service"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %s", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd; scripts/test.sh installs it): unit not verified")
	}
	// verify checks that ExecStart's binary exists: point it at a real
	// executable with the same arguments.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	u := strings.ReplaceAll(string(unit), "/usr/local/bin/operator", self)
	p := filepath.Join(dir, "operator.service")
	if err := os.WriteFile(p, []byte(u), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", p).CombinedOutput()
	if err != nil || strings.Contains(string(out), "operator.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
