package worker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm"
)

func TestTransientModelErrors(t *testing.T) {
	t.Parallel()
	api := func(status int) error {
		return fmt.Errorf("model call failed: %w", &llm.APIError{StatusCode: status})
	}
	for _, tc := range []struct {
		name      string
		err       error
		transient bool
	}{
		{"429", api(429), true},
		{"500", api(500), true},
		{"502", api(502), true},
		{"503", api(503), true},
		{"408", api(408), true},
		{"400", api(400), false},
		{"401", api(401), false},
		{"403", api(403), false},
		{"404", api(404), false},
		{"422", api(422), false},
		{"connection refused", fmt.Errorf("error calling upstream model: %w",
			&url.Error{Op: "Post", URL: "http://127.0.0.1:1", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}), true},
		{"connection reset", fmt.Errorf("x: %w", syscall.ECONNRESET), true},
		{"cut-off answer", fmt.Errorf("error reading upstream response: %w", io.ErrUnexpectedEOF), true},
		{"bad certificate", fmt.Errorf("error calling upstream model: %w", &url.Error{Op: "Post", URL: "https://x",
			Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}), false},
		{"undecodable answer", errors.New("error decoding upstream completion: invalid character"), false},
	} {
		require.Equal(t, tc.transient, transientModelError(tc.err), tc.name)
	}
}

func TestModelRetryWait(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	backoff := func(retry int) time.Duration { return time.Duration(retry) * time.Hour }
	withHeader := func(k, v string) error {
		return &llm.APIError{StatusCode: 429, Header: http.Header{k: {v}}}
	}

	wait, asked := modelRetryWait(withHeader("Retry-After", "7"), 1, now, backoff)
	require.Equal(t, 7*time.Second, wait)
	require.True(t, asked)
	wait, asked = modelRetryWait(withHeader("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)), 1, now, backoff)
	require.Equal(t, 90*time.Second, wait, "an HTTP date is measured from now")
	require.True(t, asked)
	wait, asked = modelRetryWait(&llm.APIError{StatusCode: 503}, 3, now, backoff)
	require.Equal(t, 3*time.Hour, wait, "no hint: the backoff")
	require.False(t, asked)
	wait, _ = modelRetryWait(errors.New("connection refused"), 2, now, backoff)
	require.Equal(t, 2*time.Hour, wait)
}

func TestModelBackoffGrowsWithJitterUpToACap(t *testing.T) {
	t.Parallel()
	for retry, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 9: 256 * time.Second, 10: modelBackoffMax, 1000: modelBackoffMax} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := ModelBackoff(retry)
			require.GreaterOrEqual(t, d, want/2, "retry %d", retry)
			require.LessOrEqual(t, d, want, "retry %d", retry)
			seen[d] = true
		}
		require.Greater(t, len(seen), 1, "retry %d: the waits are jittered", retry)
	}
}
