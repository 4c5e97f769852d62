package run

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tikvops/operator/internal/safetext"
)

// maskHandler masks secrets (API keys, tokens, URL passwords) in every log
// record's message and attributes before the next handler writes it: a
// model provider's error body that echoes the key, or an error naming a
// URL with its password, never reaches the log in clear.
type maskHandler struct {
	next    slog.Handler
	secrets []string
}

func newMaskHandler(next slog.Handler, secrets []string) slog.Handler {
	if len(secrets) == 0 {
		return next
	}
	return maskHandler{next: next, secrets: secrets}
}

func (h maskHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h maskHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, safetext.Mask(r.Message, h.secrets...), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h maskHandler) WithAttrs(as []slog.Attr) slog.Handler {
	m := make([]slog.Attr, len(as))
	for i, a := range as {
		m[i] = h.attr(a)
	}
	return maskHandler{next: h.next.WithAttrs(m), secrets: h.secrets}
}

func (h maskHandler) WithGroup(name string) slog.Handler {
	return maskHandler{next: h.next.WithGroup(name), secrets: h.secrets}
}

// attr masks one attribute: strings, errors and anything printed with
// %v (a []string of endpoints) become masked strings; groups recurse.
func (h maskHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, safetext.Mask(v.String(), h.secrets...))
	case slog.KindGroup:
		g := v.Group()
		m := make([]any, len(g))
		for i, x := range g {
			m[i] = h.attr(x)
		}
		return slog.Group(a.Key, m...)
	case slog.KindAny:
		s := fmt.Sprint(v.Any())
		if m := safetext.Mask(s, h.secrets...); m != s {
			return slog.String(a.Key, m)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
