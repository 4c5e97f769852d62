package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// [ha] replica-name names a checkpoint file: a path separator or a dot
// file is refused, naming the key.
func TestHAReplicaName(t *testing.T) {
	file := filepath.Join(t.TempDir(), "operator.toml")
	for name, ok := range map[string]bool{"op-1": true, "host.example:9469": true, "../x": false, "a/b": false, ".hidden": false, strings.Repeat("a", 65): false} {
		if err := os.WriteFile(file, []byte("[ha]\nreplica-name = \""+name+"\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Resolve(file, func(string) string { return "" }, Overrides{})
		if ok && (err != nil || c.HA.ReplicaName != name) {
			t.Errorf("%q: %v", name, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "replica-name")) {
			t.Errorf("%q accepted (err %v)", name, err)
		}
	}
}
