package mcpclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// REVIEW: the user's bearer token (and the caller's static headers) belong
// to the MCP server they were given for. When that server answers with a
// redirect to another origin, Go's http.Client drops Authorization from the
// copied request, but authTransport is the client's Transport and adds the
// token and the static headers again on every hop, so the other origin gets
// them.
func TestRedirectDoesNotCarryCredentialsToAnotherOrigin(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		gotAuth  []string
		gotKey   []string
		requests int
	)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		gotKey = append(gotKey, r.Header.Get("X-Api-Key"))
		mu.Unlock()
		http.Error(w, "nope", http.StatusNotFound)
	}))
	t.Cleanup(other.Close)
	mcpServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Another host name, so that http.Client itself would drop Authorization.
		http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+"/collect", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(mcpServer.Close)

	opts := Options{
		HTTPClient: &http.Client{},
		AuthorizeFunc: func(_ context.Context, _ string, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer user-secret-token")
			return nil
		},
	}
	_, err := Connect(context.Background(), opts, Server{URL: mcpServer.URL + "/mcp", Headers: map[string]string{"X-Api-Key": "caller-secret"}})
	require.Error(t, err)

	mu.Lock()
	defer mu.Unlock()
	require.NotZero(t, requests, "the redirect was followed")
	for i := range gotAuth {
		require.Empty(t, gotAuth[i], "the user's token reached another origin")
		require.Empty(t, gotKey[i], "the caller's MCP header reached another origin")
	}
}
