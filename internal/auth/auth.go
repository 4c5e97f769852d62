// Package auth is who may decide what: authenticated identities with a
// role, from the daemon's Unix socket (the peer's OS user, read from the
// kernel with SO_PEERCRED), from bearer tokens defined in the configuration
// (stored as SHA-256 hashes), or from a trusted auth-proxy header that is
// honoured only when configured.
//
// Roles, weakest first: viewer (reads), approver (also dry-runs, approves,
// rejects), admin (also acts on behalf of another person). An identity
// never comes from a flag the caller types.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"unicode"
)

// Role is what an identity may do.
type Role string

// Roles, weakest first.
const (
	Viewer   Role = "viewer"
	Approver Role = "approver"
	Admin    Role = "admin"
)

// ParseRole returns the role named s. Errors: an unknown name.
func ParseRole(s string) (Role, error) {
	switch Role(strings.ToLower(strings.TrimSpace(s))) {
	case Viewer:
		return Viewer, nil
	case Approver:
		return Approver, nil
	case Admin:
		return Admin, nil
	}
	return "", fmt.Errorf("unknown role %q (viewer, approver or admin)", s)
}

// AtLeast reports whether r includes what min allows.
func (r Role) AtLeast(min Role) bool { return rank(r) >= rank(min) && rank(min) > 0 }

func rank(r Role) int {
	switch r {
	case Viewer:
		return 1
	case Approver:
		return 2
	case Admin:
		return 3
	}
	return 0
}

// Identity is an authenticated caller.
type Identity struct {
	// Name is the person: an OS user name, a token's name or the auth
	// proxy's user. Always passes ValidName.
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Via says how it was authenticated: "unix" (peer credentials),
	// "token", "proxy" or "internal" (the daemon itself, Slack, tests).
	Via string `json:"via"`
}

// String renders "name (role via how)".
func (i Identity) String() string { return fmt.Sprintf("%s (%s via %s)", i.Name, i.Role, i.Via) }

// ErrBadName is returned (wrapped) by ValidName.
var ErrBadName = errors.New("invalid identity name")

// ValidName checks a person's name: 1 to 64 characters, letters, digits
// and . _ @ - + only (no spaces, no control, format or zero-width
// characters, so two names that print alike are the same name), not
// starting with a punctuation character.
func ValidName(name string) error {
	if name == "" || len([]rune(name)) > 64 {
		return fmt.Errorf("%w: %q must be 1 to 64 characters", ErrBadName, name)
	}
	for i, r := range name {
		ok := r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._@-+", r))
		if !ok {
			return fmt.Errorf("%w: %q has a character that is not an ASCII letter, digit or one of . _ @ - +", ErrBadName, name)
		}
		if i == 0 && strings.ContainsRune("._@-+", r) {
			return fmt.Errorf("%w: %q must start with a letter or digit", ErrBadName, name)
		}
	}
	return nil
}

// Token is one configured bearer token: a name, a role and the SHA-256 of
// the secret (the secret itself is never stored).
type Token struct {
	Name   string `toml:"name" json:"name"`
	Role   string `toml:"role" json:"role"`
	SHA256 string `toml:"sha256" json:"sha256"`
}

// HashToken returns the hex SHA-256 of a token secret, as stored in the
// configuration.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewTokenSecret returns a random token secret: "opr_" and 40 hex digits
// (160 bits).
func NewTokenSecret() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "opr_" + hex.EncodeToString(b), nil
}

// Tokens authenticates bearer tokens.
type Tokens struct{ list []Token }

// NewTokens checks the configured tokens: valid names, known roles, hex
// SHA-256 digests, no duplicate names or digests.
func NewTokens(list []Token) (*Tokens, error) {
	names, sums := map[string]bool{}, map[string]bool{}
	for i, t := range list {
		if err := ValidName(t.Name); err != nil {
			return nil, fmt.Errorf("token %d: %w", i+1, err)
		}
		if _, err := ParseRole(t.Role); err != nil {
			return nil, fmt.Errorf("token %q: %w", t.Name, err)
		}
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("token %q: sha256 must be 64 hex digits (operator auth token NAME prints it)", t.Name)
		}
		if names[strings.ToLower(t.Name)] || sums[strings.ToLower(t.SHA256)] {
			return nil, fmt.Errorf("token %q: duplicate name or secret", t.Name)
		}
		names[strings.ToLower(t.Name)], sums[strings.ToLower(t.SHA256)] = true, true
	}
	return &Tokens{list: list}, nil
}

// Authenticate returns the identity of secret, comparing digests in
// constant time; ok is false for an unknown secret.
func (ts *Tokens) Authenticate(secret string) (Identity, bool) {
	if ts == nil || secret == "" {
		return Identity{}, false
	}
	got := HashToken(secret)
	var found *Token
	for i := range ts.list {
		if subtle.ConstantTimeCompare([]byte(got), []byte(strings.ToLower(ts.list[i].SHA256))) == 1 {
			found = &ts.list[i]
		}
	}
	if found == nil {
		return Identity{}, false
	}
	role, _ := ParseRole(found.Role)
	return Identity{Name: found.Name, Role: role, Via: "token"}, true
}

// UnixPolicy maps the OS user of a Unix-socket peer to a role: root and
// the daemon's own user are admins, users listed in Roles have their role,
// everyone else is Default (viewer when empty).
type UnixPolicy struct {
	Roles   map[string]string
	Default Role
	// selfUID is the daemon's uid.
	SelfUID int
}

// Identify returns the identity of the process at the other end of a
// Unix-socket connection, from the kernel's peer credentials.
// Errors: the connection is not a Unix socket, or the credentials cannot
// be read.
func (p UnixPolicy) Identify(conn net.Conn) (Identity, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return Identity{}, errors.New("not a Unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Identity{}, err
	}
	var (
		cred *syscall.Ucred
		cerr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return Identity{}, err
	}
	if cerr != nil {
		return Identity{}, fmt.Errorf("peer credentials: %w", cerr)
	}
	return p.forUID(int(cred.Uid))
}

func (p UnixPolicy) forUID(uid int) (Identity, error) {
	name := "uid" + strconv.Itoa(uid)
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && ValidName(u.Username) == nil {
		name = u.Username
	}
	id := Identity{Name: name, Via: "unix"}
	switch {
	case uid == 0 || uid == p.SelfUID:
		id.Role = Admin
	case p.Roles[name] != "":
		r, err := ParseRole(p.Roles[name])
		if err != nil {
			return Identity{}, err
		}
		id.Role = r
	case p.Default != "":
		id.Role = p.Default
	default:
		id.Role = Viewer
	}
	return id, nil
}

type ctxKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity ctx carries.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}
