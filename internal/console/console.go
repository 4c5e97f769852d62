// Package console is the web console `operator run` serves when [console]
// enabled = true: server-rendered pages (html/template, embedded assets, no
// external fonts, scripts or CDNs) for the person who decides — tickets
// and incidents, a ticket's evidence, diagnosis and timeline, an action's
// parameters, risk, dry run, exact PD requests and cluster state before
// and after, the audit trail with its verification, and the cluster as PD
// sees it — plus the decisions themselves (dry run, approve, reject),
// which go through the executor's DryRunAs, ApproveAs and RejectAs with
// the identity of the authenticated session. Nothing about policy lives in
// the browser: roles, the number of approvers and every check are the
// daemon's.
//
// Identity: a person logs in with an API token ([[auth.tokens]]), which
// opens a server-side session (cookie HttpOnly, SameSite=Strict, Secure
// over TLS, expiring after [console] session-ttl); or, when [auth]
// proxy-user-header is configured, the trusted auth proxy's header
// identifies them exactly as for the API (api.Server.Identify). Every
// state-changing request carries the session's CSRF token and a matching
// Origin. Open pages update themselves through server-sent events.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
)

//go:embed assets
var assets embed.FS

// Decider makes the decisions: *executor.Executor.
type Decider interface {
	DryRunAs(ctx context.Context, id int64, who auth.Identity) (action.DryRunResult, action.Record, error)
	ApproveAs(ctx context.Context, id int64, who auth.Identity, d executor.Decision) (action.Proposal, executor.ApprovalResult, error)
	RejectAs(ctx context.Context, id int64, who auth.Identity, d executor.Decision, reason string) (action.Proposal, error)
}

// Catalog looks up an action's catalog entry (risk, rollback, params):
// *action.Catalog.
type Catalog interface {
	Lookup(name string) (action.Action, error)
}

// PD is what the cluster page reads from PD: *pd.Client. Stores is GET
// /pd/api/v1/stores, Operators GET /pd/api/v1/operators?object,
// Schedulers GET /pd/api/v1/schedulers, PausedSchedulerTimes GET
// /pd/api/v1/schedulers?status=paused&timestamp=true.
type PD interface {
	Stores(ctx context.Context, states ...string) ([]pd.StoreInfo, error)
	Operators(ctx context.Context) ([]pd.Operator, error)
	Schedulers(ctx context.Context) ([]string, error)
	PausedSchedulerTimes(ctx context.Context) ([]pd.PausedScheduler, error)
}

// Options configure a Server.
type Options struct {
	// Store is read for every page and polled for live updates.
	Store *store.Store
	// Decider records dry runs, approvals and rejections.
	Decider Decider
	// Catalog gives an action's risk, rollback and parameter docs.
	Catalog Catalog
	// PD is read by the cluster page (nil: the page says PD is not
	// configured).
	PD PD
	// Tokens authenticates the log-in form (nil: token log-in refused).
	Tokens *auth.Tokens
	// Identify, when not nil, identifies a request without a session: the
	// trusted auth-proxy header (api.Server.Identify). Its identities get
	// a session (for the CSRF token) bound to their name.
	Identify func(r *http.Request) (auth.Identity, error)
	// Verify runs the audit chain verification with the daemon's key and
	// checkpoint (nil: the audit page says it is not available).
	Verify func(ctx context.Context) (store.VerifyReport, error)
	// Required returns how many distinct approvers an action of a risk
	// needs (the daemon's policy; nil: 1).
	Required func(action.Risk) int
	// Prefix is the path the console is mounted under ("/ui"); no
	// trailing slash.
	Prefix string
	// SessionTTL is a session's lifetime (default 12h).
	SessionTTL time.Duration
	// Poll is how often the live-update poller reads the store's change
	// mark (default 1s).
	Poll time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// MaxSessions bounds the server-side session map; a log-in beyond it is
// refused until sessions expire or log out.
const MaxSessions = 10000

// Server serves the console.
type Server struct {
	o     Options
	pages map[string]*template.Template
	hub   *hub

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	id      string
	csrf    string
	who     auth.Identity
	expires time.Time
	// flash holds one-shot messages for the next page; dry the dry runs
	// this person ran, by action id, shown in full on the action page.
	flash []flash
	dry   map[int64]dryView
}

type flash struct {
	Kind string // "ok" or "error"
	Text string
}

type dryView struct {
	Result action.DryRunResult
	Record action.Record
}

// New returns a Server. Errors: the embedded templates do not parse (a
// build defect).
func New(o Options) (*Server, error) {
	if o.Store == nil {
		return nil, errors.New("console: a store is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Required == nil {
		o.Required = func(action.Risk) int { return 1 }
	}
	o.Prefix = strings.TrimSuffix(o.Prefix, "/")
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, pages: pages, sessions: map[string]*session{}}
	s.hub = newHub(o.Store, o.Poll, o.Logger)
	return s, nil
}

// Prefix returns the path the console is mounted under.
func (s *Server) Prefix() string { return s.o.Prefix }

// Handler serves the console at Prefix+"/..." (mount it on
// Prefix+"/"; Prefix alone redirects there).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets/static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.authn(s.logout))
	mux.HandleFunc("GET /{$}", s.authn(s.tickets))
	mux.HandleFunc("GET /tickets/{id}", s.authn(s.ticket))
	mux.HandleFunc("GET /actions/{id}", s.authn(s.action))
	mux.HandleFunc("POST /actions/{id}/dry-run", s.authn(s.decide))
	mux.HandleFunc("POST /actions/{id}/approve", s.authn(s.decide))
	mux.HandleFunc("POST /actions/{id}/reject", s.authn(s.decide))
	mux.HandleFunc("GET /audit", s.authn(s.audit))
	mux.HandleFunc("GET /cluster", s.authn(s.cluster))
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.errorPage(w, r, nil, http.StatusNotFound, "no such page: "+r.URL.Path)
	})
	inner := http.StripPrefix(s.o.Prefix, mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == s.o.Prefix {
			http.Redirect(w, r, s.o.Prefix+"/", http.StatusSeeOther)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		}
		inner.ServeHTTP(w, r)
	})
}

const cookieName = "operator_console"

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("console: crypto/rand: " + err.Error()) // never fails on Linux
	}
	return hex.EncodeToString(b)
}

// newSession stores a session for who and sets its cookie.
func (s *Server) newSession(w http.ResponseWriter, r *http.Request, who auth.Identity) (*session, error) {
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, se := range s.sessions {
		if now.After(se.expires) {
			delete(s.sessions, id)
		}
	}
	if len(s.sessions) >= MaxSessions {
		return nil, fmt.Errorf("too many open console sessions (%d); try again later", MaxSessions)
	}
	se := &session{id: randomHex(32), csrf: randomHex(32), who: who, expires: now.Add(s.o.SessionTTL), dry: map[int64]dryView{}}
	s.sessions[se.id] = se
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: se.id, Path: s.o.Prefix + "/", Expires: se.expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	return se, nil
}

// sessionOf returns r's live session, or nil.
func (s *Server) sessionOf(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.sessions[c.Value]
	if se == nil {
		return nil
	}
	if s.o.Now().After(se.expires) {
		delete(s.sessions, c.Value)
		return nil
	}
	return se
}

// identify returns r's session: its cookie's, or a new one for an identity
// the auth proxy vouches for (GET only: a POST must already carry the
// session's CSRF token). A proxy session stays bound to the proxy's user.
func (s *Server) identify(w http.ResponseWriter, r *http.Request) (*session, error) {
	se := s.sessionOf(r)
	if se != nil && se.who.Via != "proxy" {
		return se, nil
	}
	if s.o.Identify == nil {
		return nil, errors.New("not logged in")
	}
	id, err := s.o.Identify(r)
	if err != nil || id.Via != "proxy" {
		if se != nil {
			s.drop(se) // the proxy no longer vouches for this browser
		}
		return nil, errors.New("not logged in")
	}
	if se != nil && se.who.Name == id.Name && se.who.Role == id.Role {
		return se, nil
	}
	if se != nil {
		s.drop(se)
	}
	if r.Method != http.MethodGet {
		return nil, errors.New("no console session for this request")
	}
	return s.newSession(w, r, id)
}

func (s *Server) drop(se *session) {
	s.mu.Lock()
	delete(s.sessions, se.id)
	s.mu.Unlock()
}

type sessHandler func(w http.ResponseWriter, r *http.Request, se *session)

// authn requires a session; a POST also needs the session's CSRF token
// and a same-origin Origin (or Referer).
func (s *Server) authn(h sessHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		se, err := s.identify(w, r)
		if err != nil {
			if r.Method == http.MethodGet {
				// The mux sees the path without the prefix (StripPrefix):
				// put it back so the login returns to the page asked for.
				http.Redirect(w, r, s.o.Prefix+"/login?next="+url.QueryEscape(s.o.Prefix+r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.errorPage(w, r, nil, http.StatusForbidden, "refused: "+err.Error())
			return
		}
		if r.Method != http.MethodGet {
			if err := s.checkOrigin(r); err != nil {
				s.errorPage(w, r, se, http.StatusForbidden, "refused: "+err.Error())
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(se.csrf)) != 1 {
				s.errorPage(w, r, se, http.StatusForbidden, "refused: missing or wrong CSRF token (reload the page and try again)")
				return
			}
		}
		h(w, r, se)
	}
}

// checkOrigin requires the Origin header (or, without it, the Referer) to
// name this server's scheme and host.
func (s *Server) checkOrigin(r *http.Request) error {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	want := scheme + "://" + r.Host
	if o := r.Header.Get("Origin"); o != "" {
		if o != want {
			return fmt.Errorf("cross-origin request from %q", o)
		}
		return nil
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		if ref != want && !strings.HasPrefix(ref, want+"/") {
			return errors.New("cross-origin request (Referer)")
		}
		return nil
	}
	return errors.New("a state-changing request needs an Origin or Referer header")
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, nil, http.StatusOK, "login", loginView{Next: s.safeNext(r.URL.Query().Get("next")), Proxy: s.o.Identify != nil})
}

type loginView struct {
	Next  string
	Error string
	Proxy bool
}

// safeNext keeps a redirect target inside the console.
func (s *Server) safeNext(next string) string {
	if !strings.HasPrefix(next, s.o.Prefix+"/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return s.o.Prefix + "/"
	}
	return next
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := s.checkOrigin(r); err != nil {
		s.errorPage(w, r, nil, http.StatusForbidden, "refused: "+err.Error())
		return
	}
	next := s.safeNext(r.PostFormValue("next"))
	id, ok := s.o.Tokens.Authenticate(strings.TrimSpace(r.PostFormValue("token")))
	if !ok {
		s.o.Logger.Warn("console log-in refused: unknown token", "remote", r.RemoteAddr)
		s.render(w, r, nil, http.StatusUnauthorized, "login", loginView{Next: next, Error: "Unknown token.", Proxy: s.o.Identify != nil})
		return
	}
	if old := s.sessionOf(r); old != nil {
		s.drop(old)
	}
	if _, err := s.newSession(w, r, id); err != nil {
		s.errorPage(w, r, nil, http.StatusServiceUnavailable, err.Error())
		return
	}
	s.o.Logger.Info("console log-in", "name", id.Name, "role", id.Role, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, se *session) {
	s.drop(se)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: s.o.Prefix + "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, s.o.Prefix+"/login", http.StatusSeeOther)
}

// events streams "changed" server-sent events while the session lives.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	se, err := s.identify(w, r)
	if err != nil {
		http.Error(w, "not logged in", http.StatusUnauthorized)
		return
	}
	s.hub.serve(w, r, func() bool { return s.o.Now().Before(se.expires) })
}

func (s *Server) addFlash(se *session, kind, text string) {
	s.mu.Lock()
	se.flash = append(se.flash, flash{Kind: kind, Text: text})
	if len(se.flash) > 5 {
		se.flash = se.flash[len(se.flash)-5:]
	}
	s.mu.Unlock()
}

func (s *Server) takeFlash(se *session) []flash {
	if se == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := se.flash
	se.flash = nil
	return f
}
