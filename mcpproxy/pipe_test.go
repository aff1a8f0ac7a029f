package mcpproxy

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// An answer that says its length ends for the caller once that many bytes
// are read, while the handler still works (closing its MCP sessions); one
// that does not say it ends when the handler returns; one cut short is an
// error, not a silent short read.
func TestServePipeEndsAtContentLength(t *testing.T) {
	t.Parallel()
	const answer = `{"id":"chatcmpl-1"}`
	serve := func(length string, write string, release <-chan struct{}) func(context.Context, http.ResponseWriter) {
		return func(_ context.Context, w http.ResponseWriter) {
			if length != "" {
				w.Header().Set("Content-Length", length)
			}
			_, _ = io.WriteString(w, write)
			<-release
		}
	}
	req, err := http.NewRequest(http.MethodPost, "http://mcpproxy.invalid/v1/chat/completions", nil)
	require.NoError(t, err)

	t.Run("Length", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		resp, err := servePipe(req, serve(strconv.Itoa(len(answer)), answer, release))
		require.NoError(t, err)
		require.Equal(t, int64(len(answer)), resp.ContentLength)
		done := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(resp.Body)
			done <- b
		}()
		select {
		case b := <-done:
			require.Equal(t, answer, string(b))
		case <-time.After(5 * time.Second):
			t.Fatal("the body did not end at its Content-Length while the handler still ran")
		}
		require.NoError(t, resp.Body.Close())
	})

	t.Run("NoLength", func(t *testing.T) {
		release := make(chan struct{})
		resp, err := servePipe(req, serve("", answer, release))
		require.NoError(t, err)
		require.Equal(t, int64(-1), resp.ContentLength)
		done := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(resp.Body)
			done <- b
		}()
		select {
		case <-done:
			t.Fatal("the body ended before the handler returned")
		case <-time.After(100 * time.Millisecond):
		}
		close(release)
		require.Equal(t, answer, string(<-done))
	})

	t.Run("Short", func(t *testing.T) {
		release := make(chan struct{})
		close(release)
		resp, err := servePipe(req, serve(strconv.Itoa(len(answer)+5), answer, release))
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		require.Equal(t, answer, string(b))
	})
}
