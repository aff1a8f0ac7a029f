package webhooks_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/mcpidp/mcpidp/webhooks"
)

// A receiver checks each webhook with Verify before acting on it, and
// de-duplicates on webhook-id.
func ExampleVerify() {
	secret, err := webhooks.NewSecret() // in practice, the tenant's secret from mcpidp
	if err != nil {
		panic(err)
	}
	receive := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if err := webhooks.Verify(secret, r.Header, body, time.Now()); err != nil {
			fmt.Println("refused:", errors.Is(err, webhooks.ErrInvalidSignature))
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		fmt.Println("accepted", r.Header.Get(webhooks.HeaderID), string(body))
		w.WriteHeader(http.StatusNoContent)
	}

	// What mcpidp sends: a POST signed with the same secret.
	body := `{"type":"task.completed","timestamp":"2026-01-02T03:04:05Z","data":{}}`
	header, err := webhooks.SignedHeaders(secret, "msg_1", time.Now(), []byte(body))
	if err != nil {
		panic(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader(body))
	for name, v := range header {
		req.Header[name] = v
	}
	receive(httptest.NewRecorder(), req)

	// The same message with another body is refused.
	req = httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader(`{"type":"task.failed"}`))
	for name, v := range header {
		req.Header[name] = v
	}
	receive(httptest.NewRecorder(), req)

	// Output:
	// accepted msg_1 {"type":"task.completed","timestamp":"2026-01-02T03:04:05Z","data":{}}
	// refused: true
}
