package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/redact"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://mcp.example.com/mcp":                             "https://mcp.example.com/mcp",
		"https://MCP.example.com:443/mcp/":                        "https://MCP.example.com:443/mcp/",
		"https://mcp.example.com/mcp?api_key=secret123":           "https://mcp.example.com/mcp?…",
		"https://user:pw@mcp.example.com/mcp":                     "https://mcp.example.com/mcp",
		"http://user:pw@127.0.0.1:8080/mcp?key=secret123&x=1#top": "http://127.0.0.1:8080/mcp?…#top",
	} {
		require.Equal(t, want, redact.URL(in), in)
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`Post "https://user:***@mcp.example.com/mcp?api_key=secret123": dial tcp: refused`: `Post "https://mcp.example.com/mcp?…": dial tcp: refused`,
		"MCP server https://mcp.example.com/mcp?key=abc: 401":                              "MCP server https://mcp.example.com/mcp?…: 401",
		"see https://a.example.com/x?y=z, then HTTPS://u:p@b.example.com/ (done).":         "see https://a.example.com/x?…, then HTTPS://b.example.com/ (done).",
		"no URL here: user@example.com?":                                                   "no URL here: user@example.com?",
		// Quotes and angle brackets can be part of a key: they are hidden with it.
		`Post "http://127.0.0.1:1/mcp?api_key=abc'SECRET": dial tcp: refused`:   `Post "http://127.0.0.1:1/mcp?…": dial tcp: refused`,
		`Post "http://127.0.0.1:1/mcp?api_key=abc\"SECRET": dial tcp: refused`:  `Post "http://127.0.0.1:1/mcp?…": dial tcp: refused`,
		`Post "http://127.0.0.1:1/mcp?api_key=abc<SECRET>x": dial tcp: refused`: `Post "http://127.0.0.1:1/mcp?…": dial tcp: refused`,
		`Get "https://user:pa'SECRET@mcp.example.com/mcp": EOF`:                 `Get "https://mcp.example.com/mcp": EOF`,
	} {
		require.Equal(t, want, redact.Text(in), in)
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	cause := &url.Error{Op: "Post", URL: "https://mcp.example.com/mcp?api_key=secret123", Err: fs.ErrNotExist}
	err := redact.Error(fmt.Errorf("error connecting: %w", cause))
	require.NotContains(t, err.Error(), "secret123")
	require.ErrorIs(t, err, fs.ErrNotExist)
	var ue *url.Error
	require.True(t, errors.As(err, &ue))
	require.NoError(t, redact.Error(nil))
	plain := errors.New("plain")
	require.Same(t, plain, redact.Error(plain))
}

func TestHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(redact.NewHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log = log.With(slog.String("server_url", "https://u:hunter2@mcp.example.com/mcp?k=secret123"))
	log.WithGroup("g").Debug("calling https://mcp.example.com/mcp?k=secret123",
		slog.Any("error", errors.New(`Post "https://mcp.example.com/mcp?k=secret123": EOF`)),
		slog.Group("inner", slog.String("url", "https://mcp.example.com/mcp?k=secret123")), slog.Int("n", 1))
	out := buf.String()
	require.NotContains(t, out, "secret123")
	require.NotContains(t, out, "hunter2")
	require.Contains(t, out, "https://mcp.example.com/mcp?…")
	require.Contains(t, out, `"n":1`)
}
