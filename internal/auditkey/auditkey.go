// Package auditkey holds the key that authenticates the audit trail and the
// checkpoint file that records the chain head outside the database.
//
// The key is an Ed25519 key pair in two files next to each other:
//
//	audit.key      the 32-byte private seed, hex, mode 0600 (only the daemon reads it)
//	audit.key.pub  the public key, hex, mode 0644 (anyone who verifies reads it)
//
// The daemon signs the hash of every audit record it appends. Someone who
// can write the database but cannot read audit.key cannot forge a record
// that verifies: `operator audit verify` checks every signature with the
// public key. The checkpoint file (audit.checkpoint, append-only lines
// "ID HASH UNIX_NANOS SIGNATURE") records the chain head after each
// append, so that a wiped, trimmed or rewound chain is detected even when
// the database alone looks consistent.
//
// Several replicas ([ha], or several daemons on one PostgreSQL database)
// may share one key directory (on one host, or a shared volume). Each then
// appends to its own checkpoint file, audit.checkpoint.<replica>
// (NewReplicaCheckpoint), so that no two processes append to one file
// (appends from several hosts to one file on a network filesystem are not
// atomic). Readers (ReadHeads, ReadCheckpoints) read audit.checkpoint and
// every audit.checkpoint.* file in the directory.
package auditkey

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// File names inside the key directory.
const (
	KeyFile        = "audit.key"
	PublicKeyFile  = "audit.key.pub"
	CheckpointFile = "audit.checkpoint"
)

// ErrNoKey is returned (wrapped) when the key or public key file does not
// exist.
var ErrNoKey = errors.New("no audit key")

// Key signs audit record hashes. The zero value is unusable; use
// LoadOrCreate.
type Key struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

// PublicKey verifies signatures made by a Key.
type PublicKey struct{ pub ed25519.PublicKey }

// LoadOrCreate reads dir/audit.key, or creates a new key pair there
// (dir with mode 0700, the private key 0600, the public key 0644) when it
// does not exist. Errors: unreadable or malformed key files, or a
// filesystem error creating them.
func LoadOrCreate(dir string) (*Key, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("audit key: %w", err)
		}
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("audit key: generate: %w", err)
		}
		// Written whole to a temporary file, then linked into place: the
		// link fails if another process (a replica starting at the same
		// moment) made the key first, and nobody ever reads a half-written
		// key (an empty audit.key stopped a replica once).
		tmp, err := os.CreateTemp(dir, KeyFile+".tmp-*")
		if err != nil {
			return nil, fmt.Errorf("audit key: %w", err)
		}
		defer os.Remove(tmp.Name())
		_, werr := tmp.WriteString(hex.EncodeToString(priv.Seed()) + "\n")
		if werr == nil {
			werr = tmp.Chmod(0o600)
		}
		if werr == nil {
			werr = tmp.Sync()
		}
		if cerr := tmp.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("audit key: write %s: %w", tmp.Name(), werr)
		}
		if err := os.Link(tmp.Name(), path); err != nil {
			if errors.Is(err, os.ErrExist) { // another process won the race
				return LoadOrCreate(dir)
			}
			return nil, fmt.Errorf("audit key: %w", err)
		}
		if err := writeAtomic(filepath.Join(dir, PublicKeyFile), []byte(hex.EncodeToString(pub)+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("audit key: write public key: %w", err)
		}
		return &Key{priv: priv, pub: pub}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit key %s: not a hex Ed25519 seed of %d bytes", path, ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	k := &Key{priv: priv, pub: priv.Public().(ed25519.PublicKey)}
	// Re-create a missing public key file from the private key.
	pubPath := filepath.Join(dir, PublicKeyFile)
	if _, err := os.Stat(pubPath); errors.Is(err, os.ErrNotExist) {
		_ = os.WriteFile(pubPath, []byte(hex.EncodeToString(k.pub)+"\n"), 0o644)
	}
	return k, nil
}

// writeAtomic writes data to path through a temporary file in the same
// directory and a rename, so a reader sees the old file or the whole new
// one.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// LoadPublic reads dir/audit.key.pub. Errors: ErrNoKey (wrapped) when it
// does not exist; a malformed file.
func LoadPublic(dir string) (*PublicKey, error) {
	path := filepath.Join(dir, PublicKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNoKey, path)
	}
	if err != nil {
		return nil, fmt.Errorf("audit public key: %w", err)
	}
	pub, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("audit public key %s: not a hex Ed25519 public key", path)
	}
	return &PublicKey{pub: ed25519.PublicKey(pub)}, nil
}

// Public returns the verifying half of k.
func (k *Key) Public() *PublicKey { return &PublicKey{pub: k.pub} }

// Sign returns the base64 signature of msg (a record hash).
func (k *Key) Sign(msg string) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(k.priv, []byte("operator.audit.v1\n"+msg)))
}

// Verify reports whether sig is k's signature of msg.
func (p *PublicKey) Verify(msg, sig string) bool {
	if p == nil || sig == "" {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(b) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(p.pub, []byte("operator.audit.v1\n"+msg), b)
}

// Head is one checkpoint line: the newest record id and hash after an
// append, when, and the key's signature over them.
type Head struct {
	ID   int64
	Hash string
	At   time.Time
	Sig  string
}

func headMessage(id int64, hash string, at time.Time) string {
	return "checkpoint " + strconv.FormatInt(id, 10) + " " + hash + " " + strconv.FormatInt(at.UnixNano(), 10)
}

// Checkpoint appends chain heads to dir/audit.checkpoint, or to
// dir/audit.checkpoint.<replica> (NewReplicaCheckpoint).
type Checkpoint struct {
	mu   sync.Mutex
	path string
	key  *Key
}

// NewCheckpoint returns a writer of dir/audit.checkpoint signing with key.
func NewCheckpoint(dir string, key *Key) *Checkpoint {
	return &Checkpoint{path: filepath.Join(dir, CheckpointFile), key: key}
}

// NewReplicaCheckpoint returns a writer of dir/audit.checkpoint.<name>
// signing with key: one file per replica, so that replicas sharing the key
// directory never append to the same file. name is reduced to
// ReplicaFileName's characters; an empty name gives the shared
// audit.checkpoint (NewCheckpoint).
func NewReplicaCheckpoint(dir, name string, key *Key) *Checkpoint {
	n := ReplicaFileName(name)
	if n == "" {
		return NewCheckpoint(dir, key)
	}
	return &Checkpoint{path: filepath.Join(dir, CheckpointFile+"."+n), key: key}
}

// ReplicaFileName reduces a replica name (e.g. "host:127.0.0.1:9471") to
// the characters [A-Za-z0-9._-], others replaced by '_', at most 128
// bytes: the suffix of its checkpoint file. "" stays "".
func ReplicaFileName(name string) string {
	b := []byte(strings.TrimSpace(name))
	if len(b) > 128 {
		b = b[:128]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return strings.Trim(string(b), ".")
}

// Path returns the checkpoint file's path.
func (c *Checkpoint) Path() string { return c.path }

// Append writes one line for the head (id, hash) and syncs the file.
func (c *Checkpoint) Append(id int64, hash string, at time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	sig := ""
	if c.key != nil {
		sig = c.key.Sign(headMessage(id, hash, at))
	}
	_, err = fmt.Fprintf(f, "%d %s %d %s\n", id, hash, at.UnixNano(), sig)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	return nil
}

// CheckpointHeads are the verified lines of one checkpoint file.
type CheckpointHeads struct {
	// File is the file's base name: audit.checkpoint or
	// audit.checkpoint.<replica>.
	File string
	// Heads are the lines whose signature verified, in file order.
	Heads []Head
	// Bad counts lines that did not parse or verify.
	Bad int
}

// Newest returns the head with the highest record id (the zero Head when
// there is none).
func (c CheckpointHeads) Newest() Head {
	var h Head
	for _, x := range c.Heads {
		if x.ID > h.ID {
			h = x
		}
	}
	return h
}

// CheckpointFiles returns the base names of the checkpoint files in dir:
// audit.checkpoint (when it exists) first, then audit.checkpoint.<replica>
// files in name order. A missing dir gives none and no error.
func CheckpointFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	var shared bool
	var replicas []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		switch {
		case n == CheckpointFile:
			shared = true
		case strings.HasPrefix(n, CheckpointFile+".") && len(n) > len(CheckpointFile)+1:
			replicas = append(replicas, n)
		}
	}
	sort.Strings(replicas)
	if shared {
		return append([]string{CheckpointFile}, replicas...), nil
	}
	return replicas, nil
}

// ReadCheckpoints reads every checkpoint file of dir (CheckpointFiles),
// keeping the lines whose signature verifies with pub (every line when
// pub is nil). Files without lines are returned too (with no Heads).
func ReadCheckpoints(dir string, pub *PublicKey) ([]CheckpointHeads, error) {
	files, err := CheckpointFiles(dir)
	if err != nil {
		return nil, err
	}
	out := make([]CheckpointHeads, 0, len(files))
	for _, name := range files {
		heads, bad, err := readHeadsFile(filepath.Join(dir, name), pub)
		if err != nil {
			return out, err
		}
		out = append(out, CheckpointHeads{File: name, Heads: heads, Bad: bad})
	}
	return out, nil
}

// ReadHeads reads every checkpoint line of every checkpoint file in dir
// (audit.checkpoint and audit.checkpoint.<replica>: ReadCheckpoints),
// file after file, whose signature verifies with pub (every line when pub
// is nil); lines that do not parse or verify are counted in bad. No file
// gives no heads and no error.
func ReadHeads(dir string, pub *PublicKey) (heads []Head, bad int, err error) {
	cps, err := ReadCheckpoints(dir, pub)
	for _, c := range cps {
		heads = append(heads, c.Heads...)
		bad += c.Bad
	}
	return heads, bad, err
}

func readHeadsFile(path string, pub *PublicKey) (heads []Head, bad int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("audit checkpoint: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			bad++
			continue
		}
		id, err1 := strconv.ParseInt(fields[0], 10, 64)
		ns, err2 := strconv.ParseInt(fields[2], 10, 64)
		if err1 != nil || err2 != nil {
			bad++
			continue
		}
		h := Head{ID: id, Hash: fields[1], At: time.Unix(0, ns).UTC()}
		if len(fields) > 3 {
			h.Sig = fields[3]
		}
		if pub != nil && !pub.Verify(headMessage(h.ID, h.Hash, h.At), h.Sig) {
			bad++
			continue
		}
		heads = append(heads, h)
	}
	if err := sc.Err(); err != nil {
		return heads, bad, fmt.Errorf("audit checkpoint %s: %w", filepath.Base(path), err)
	}
	return heads, bad, nil
}
