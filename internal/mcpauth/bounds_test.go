package mcpauth_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

// hugeAuthServer is an MCP server's authorization side whose documents can be padded to n bytes,
// written a piece at a time.
type hugeAuthServer struct {
	url string
	// pad names the document that is padded: "prm", "as", "register" or "token".
	pad string
}

func newHugeAuthServer(t *testing.T, pad string) *hugeAuthServer {
	s := &hugeAuthServer{pad: pad}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var doc map[string]any
		status := http.StatusOK
		name := ""
		switch r.URL.Path {
		case "/.well-known/oauth-protected-resource/mcp":
			name, doc = "prm", map[string]any{"resource": s.url + "/mcp", "authorization_servers": []string{s.url}}
		case "/.well-known/oauth-authorization-server":
			name, doc = "as", map[string]any{"issuer": s.url, "authorization_endpoint": s.url + "/authorize",
				"token_endpoint": s.url + "/token", "registration_endpoint": s.url + "/register",
				"code_challenge_methods_supported": []string{"S256"}}
		case "/register":
			name, doc, status = "register", map[string]any{"client_id": "client-1", "token_endpoint_auth_method": "none"}, http.StatusCreated
		case "/token":
			name, doc = "token", map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 3600}
		default:
			http.NotFound(w, r)
			return
		}
		raw, _ := json.Marshal(doc)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if name != s.pad {
			_, _ = w.Write(raw)
			return
		}
		// {"padding":"xxx…", …the document}
		_, _ = io.WriteString(w, `{"padding":"`)
		chunk := strings.Repeat("x", 64<<10)
		for range 5 << 20 / len(chunk) {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `",`+string(raw[1:]))
	}))
	t.Cleanup(ts.Close)
	s.url = ts.URL
	return s
}

func (s *hugeAuthServer) challenge() string {
	return `Bearer resource_metadata="` + s.url + `/.well-known/oauth-protected-resource/mcp"`
}

// TestOversizedOAuthDocumentsFailTheLogin: metadata, registrations and token responses of 5 MB
// are refused with an error that says so, instead of being read whole or cut into a parse error.
func TestOversizedOAuthDocumentsFailTheLogin(t *testing.T) {
	t.Parallel()
	for pad, want := range map[string]string{
		"prm":      "/.well-known/oauth-protected-resource/mcp: document larger than 1048576 bytes",
		"as":       "/.well-known/oauth-authorization-server: document larger than 1048576 bytes",
		"register": "/register answered more than 1048576 bytes",
	} {
		t.Run(pad, func(t *testing.T) {
			t.Parallel()
			e, _ := setup(t, storetest.SQLite, nil)
			srv := newHugeAuthServer(t, pad)
			_, err := e.BeginLogin(context.Background(), mcpauth.LoginParams{Tenant: "acme", User: "alice",
				ServerURL: srv.url + "/mcp", WWWAuthenticate: srv.challenge()})
			require.ErrorIs(t, err, mcpauth.ErrDiscovery)
			require.ErrorContains(t, err, want)
		})
	}

	t.Run("token", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		e, _ := setup(t, storetest.SQLite, nil)
		srv := newHugeAuthServer(t, "token")
		l, err := e.BeginLogin(ctx, mcpauth.LoginParams{Tenant: "acme", User: "alice",
			ServerURL: srv.url + "/mcp", WWWAuthenticate: srv.challenge()})
		require.NoError(t, err)
		started, err := e.Start(ctx, l.ID)
		require.NoError(t, err)
		u, err := url.Parse(started.URL)
		require.NoError(t, err)
		_, err = e.Callback(ctx, url.Values{"state": {u.Query().Get("state")}, "code": {"code-1"}}, []*http.Cookie{started.Cookie})
		require.ErrorContains(t, err, "token response is larger than 524288 bytes")
	})
}
