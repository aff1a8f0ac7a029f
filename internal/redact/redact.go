// Package redact hides the secrets a URL can carry, its userinfo
// (user:password@) and its query string, wherever mcpidp shows or logs
// one. Some MCP servers take their key in the query (…/mcp?api_key=…) or
// as userinfo; the full URL is kept sealed and used only to connect.
package redact

import (
	"context"
	"log/slog"
	"net/url"
	"regexp"
)

// Hidden stands for a query string that was removed.
const Hidden = "…"

// URL returns raw as it may be shown: without userinfo, and with a query
// string replaced by Hidden ("https://mcp.example.com/mcp?…"). A URL that
// has neither is returned unchanged, byte for byte; text that does not
// parse as a URL goes through Text.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Text(raw)
	}
	if u.User == nil && u.RawQuery == "" {
		return raw
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = Hidden
	}
	return u.String()
}

var (
	// userinfoInURL matches the userinfo of an http(s) URL in a message.
	// A quote or angle bracket may be part of a secret (url.Parse takes them), so
	// only white space, '"' and the URL's own delimiters end it.
	userinfoInURL = regexp.MustCompile(`(?i)(https?://)[^\s/?#@"]*@`)
	// queryInURL matches the query string of an http(s) URL in a message. It runs to
	// white space, '#' or a '"' that closes a quoted URL (%q writes a '"' inside one as
	// \"), so quotes and angle brackets in a key are hidden with it. A trailing ':', ',',
	// '.', ';' or ')' ends the message's sentence, not the query ("…?key=x: 401").
	queryInURL = regexp.MustCompile(`(?i)(https?://[^\s?#"'<>]+)\?(?:\\.|[^\s#"\\])*(?:\\.|[^\s#"\\:,.;)])`)
)

// Text hides the userinfo and the query string of every http(s) URL in a
// message (an error text, a log line).
func Text(s string) string {
	s = userinfoInURL.ReplaceAllString(s, "$1")
	return queryInURL.ReplaceAllString(s, "$1?"+Hidden)
}

// Error returns err with its message passed through Text; errors.Is and
// errors.As still see err. Nil stays nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	if msg := Text(err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// NewHandler wraps h so that every log message, and every string or error
// attribute, goes through Text: libraries log the URLs they were given
// (an HTTP client's error names the URL with its query).
func NewHandler(h slog.Handler) slog.Handler { return &handler{inner: h} }

type handler struct{ inner slog.Handler }

func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = attr(a)
	}
	return &handler{inner: h.inner.WithAttrs(clean)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{inner: h.inner.WithGroup(name)}
}

func attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Text(v.String()))
	case slog.KindGroup:
		group := v.Group()
		clean := make([]any, len(group))
		for i, g := range group {
			clean[i] = attr(g)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, Text(x.Error()))
		case interface{ String() string }:
			return slog.String(a.Key, Text(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
