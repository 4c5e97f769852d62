package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"

	"github.com/tikvops/operator/internal/safetext"
)

// pageNames are the templates under assets/, each rendered inside
// layout.html.
var pageNames = []string{"login", "tickets", "ticket", "action", "audit", "cluster", "error"}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// page is what layout.html gets.
type page struct {
	P       string // prefix
	Title   string
	Nav     string
	Who     *whoView
	CSRF    string
	Flash   []flash
	Content any
}

type whoView struct {
	Name, Role, Via string
	CanDecide       bool
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, se *session, status int, name string, content any) {
	p := page{P: s.o.Prefix, Title: titleOf(name, content), Nav: name, Content: content}
	if se != nil {
		p.Who = &whoView{Name: se.who.Name, Role: string(se.who.Role), Via: se.who.Via, CanDecide: canDecide(se)}
		p.CSRF = se.csrf
		p.Flash = s.takeFlash(se)
	}
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		s.o.Logger.Error("console: rendering a page", "page", name, "err", err)
		http.Error(w, "rendering failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorView struct {
	Status  int
	Message string
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, se *session, status int, msg string) {
	s.render(w, r, se, status, "error", errorView{Status: status, Message: safetext.Text(msg, 2000)})
}

type titled interface{ title() string }

func titleOf(name string, content any) string {
	if t, ok := content.(titled); ok {
		return t.title()
	}
	return map[string]string{"login": "Log in", "tickets": "Tickets", "audit": "Audit trail", "cluster": "Cluster", "error": "Error"}[name]
}

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if v == nil || v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		}
		return ""
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
	// text is every untrusted string's last step before html/template
	// escapes it: control characters and escape sequences removed, bounded.
	"text": func(s string) string { return safetext.Text(s, safetext.MaxText) },
	"line": func(s string) string { return safetext.Line(s, 300) },
	"json": func(b json.RawMessage) string { return prettyJSON(b) },
	"trow": func(p string, row ticketRow, child bool) map[string]any {
		return map[string]any{"p": p, "row": row, "child": child}
	},
	"cut": func(s string, n int) string {
		if len(s) <= n {
			return s
		}
		return s[:n] + "…"
	},
}

func prettyJSON(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return safetext.Text(string(b), 64<<10)
	}
	return safetext.Text(out.String(), 64<<10)
}

// md renders a diagnosis' markdown: control characters stripped and the
// size bounded (safetext), then CommonMark with tables and strikethrough by
// goldmark in its default safe mode — raw HTML is dropped ("raw HTML
// omitted") and links with javascript:, vbscript:, file: or data: (other
// than images) URLs are rendered without their destination.
var md = goldmark.New(goldmark.WithExtensions(extension.Table, extension.Strikethrough))

func renderMarkdown(src string) template.HTML {
	var buf bytes.Buffer
	if err := md.Convert([]byte(safetext.Text(src, safetext.MaxText)), &buf); err != nil {
		return template.HTML("<pre>" + template.HTMLEscapeString(safetext.Text(src, safetext.MaxText)) + "</pre>")
	}
	return template.HTML(buf.String()) // goldmark escaped all text and dropped raw HTML
}

// kv is one row of an evidence or params table.
type kv struct {
	Key, Value, Doc string
}

// flatten renders a JSON object as sorted key/value rows: scalars as
// themselves, nested values as compact JSON. A non-object is one row.
func flatten(raw json.RawMessage) []kv {
	if len(raw) == 0 {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return []kv{{Key: "value", Value: safetext.Text(string(raw), 4096)}}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]kv, 0, len(keys))
	for _, k := range keys {
		out = append(out, kv{Key: safetext.Line(k, 200), Value: scalar(obj[k])})
	}
	return out
}

func scalar(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return safetext.Text(s, 4096)
	}
	var buf bytes.Buffer
	if json.Compact(&buf, v) == nil {
		return safetext.Text(buf.String(), 4096)
	}
	return safetext.Text(string(v), 4096)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

func joinNames(names []string) string { return strings.Join(names, ", ") }
