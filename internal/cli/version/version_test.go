package version

import (
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/cli/clitest"
)

func TestStampedVersionAndCommit(t *testing.T) {
	old := Commit
	defer func() { Commit = old }()
	Commit = "0123456789abcdef0123+dirty"
	info := Resolve("v1.2.3")
	if info.Version != "v1.2.3" || info.Commit != "0123456789abcdef0123" || !info.Modified {
		t.Errorf("Resolve = %+v", info)
	}
	f, out, _ := clitest.Factory(t, "unused.db")
	f.Version = "v1.2.3"
	cmd := NewCmdVersion(f)
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.HasPrefix(s, "operator v1.2.3 (go") || !strings.Contains(s, "commit 0123456789ab+dirty") {
		t.Errorf("version prints %q", s)
	}
	Commit = ""
	if info := Resolve(""); info.Version == "" {
		t.Errorf("empty version: %+v", info)
	}
}
