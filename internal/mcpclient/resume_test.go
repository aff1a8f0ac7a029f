package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A Streamable HTTP server may end a tools/call answer's stream before the result and let the
// client resume it with GET + Last-Event-ID. When that GET is answered 404 or 401, the server had
// already accepted the POST, so the tool may have run: the call must fail as an AnswerLostError,
// never be sent again on a new session or with new credentials, and never look like a login
// challenge (a task would pause and send it again after the login).
func TestAcceptedCallWhoseAnswerIsLostIsNotSentAgain(t *testing.T) {
	t.Parallel()
	for _, getStatus := range []int{http.StatusNotFound, http.StatusUnauthorized} {
		t.Run(fmt.Sprint(getStatus), func(t *testing.T) {
			t.Parallel()
			var (
				mu          sync.Mutex
				calls, sess int
			)
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.Method {
				case http.MethodGet:
					if r.Header.Get("Last-Event-ID") != "" {
						w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
						w.WriteHeader(getStatus)
						return
					}
					w.WriteHeader(http.StatusMethodNotAllowed)
					return
				case http.MethodDelete:
					return
				}
				body, _ := io.ReadAll(r.Body)
				var msg struct {
					ID     json.RawMessage `json:"id"`
					Method string          `json:"method"`
				}
				_ = json.Unmarshal(body, &msg)
				switch msg.Method {
				case "initialize":
					mu.Lock()
					sess++
					id := fmt.Sprintf("s%d", sess)
					mu.Unlock()
					w.Header().Set("Mcp-Session-Id", id)
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"t","version":"1"}}}`, msg.ID)
				case "tools/call":
					mu.Lock()
					calls++
					mu.Unlock()
					w.Header().Set("Content-Type", "text/event-stream")
					w.WriteHeader(http.StatusOK)
					// The tool ran; the stream ends before the result (SEP-1699 polling).
					fmt.Fprint(w, "id: e1\nretry: 10\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n")
				default:
					w.WriteHeader(http.StatusAccepted)
				}
			}))
			defer ts.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := Connect(ctx, Options{HTTPClient: &http.Client{},
				AuthorizeFunc: func(_ context.Context, _ string, req *http.Request) error {
					req.Header.Set("Authorization", "Bearer tok")
					return nil
				},
				UnauthorizedFunc: func(context.Context, string, string) (bool, error) { return true, nil },
			}, Server{URL: ts.URL})
			require.NoError(t, err)
			defer s.Close()

			_, err = s.CallTool(ctx, "transfer_money", []byte(`{}`))
			var lost *AnswerLostError
			require.ErrorAs(t, err, &lost)
			var ch *AuthChallengeError
			require.False(t, errors.As(err, &ch), "a lost answer is not a login challenge: %v", err)
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, 1, calls, "the tools/call was sent %d times", calls)
		})
	}
}
