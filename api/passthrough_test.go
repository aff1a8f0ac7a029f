package api

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The fields a task request does not consume reach the model as the caller
// wrote them: same bytes, same order, the same way the chat proxy passes
// them (llm.WithoutFields).
func TestTaskRequestPassesUnconsumedFieldsUntouched(t *testing.T) {
	t.Parallel()
	var lim Limits
	lim.ApplyDefaults()
	req, err := parseCreateTask([]byte(`{"user":"u","model":"m","z_extra":{"b":1, "a":2.50},"input":"x","metadata":{"k":"v"},"a_extra":true}`), lim)
	require.NoError(t, err)
	require.Equal(t, `{"model":"m","z_extra":{"b":1, "a":2.50},"a_extra":true}`, string(req.Request.Body))
}
