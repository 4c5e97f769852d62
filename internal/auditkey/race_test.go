package auditkey

import (
	"bytes"
	"sync"
	"testing"
)

// Replicas starting together on an empty key directory: every one gets
// the same whole key; none reads a half-written audit.key (an empty file
// stopped a replica of the PostgreSQL restart test).
func TestLoadOrCreateConcurrent(t *testing.T) {
	for round := 0; round < 20; round++ {
		dir := t.TempDir()
		const n = 8
		keys := make([]*Key, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				keys[i], errs[i] = LoadOrCreate(dir)
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d, loader %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(keys[i].pub, keys[0].pub) {
				t.Fatalf("round %d: loaders got different keys", round)
			}
		}
		pub, err := LoadPublic(dir)
		if err != nil || !bytes.Equal(pub.pub, keys[0].pub) {
			t.Fatalf("round %d: public key file %v, %v", round, pub, err)
		}
	}
}
