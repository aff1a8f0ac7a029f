package delivery_test

import (
	"bytes"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

// TestDeliverDoesNotReadAnEndlessAnswer: a receiver that answers 200 with a body that never ends
// gets its delivery recorded, with 1 KiB of the answer, and is not read to the end.
func TestDeliverDoesNotReadAnEndlessAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t, storetest.DatabaseURL(t, storetest.SQLite), setupOpts{})
	var written atomic.Int64
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
		w.WriteHeader(http.StatusOK)
		chunk := bytes.Repeat([]byte("y"), 32<<10)
		for written.Load() < 1<<30 {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return // mcpidp hung up
			}
		}
	})
	id := b.enqueue(t, rcv.URL+"/hooks")
	d := b.waitEnded(t, id)
	require.Equal(t, store.WebhookDelivered, d.Status)
	require.Equal(t, strings.Repeat("y", 1024), b.attempts(t, id)[0].ResponseBody)
	require.Less(t, written.Load(), int64(64<<20), "the receiver was cut off, not read to its 1 GiB")
}
