package mcpclient

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/testenv"
)

// TestServerRequestsEverything answers server-everything's elicitation and sampling requests, and
// checks the capabilities are declared only when a handler is given (the server offers the trigger
// tools only to clients that declare them).
func TestServerRequestsEverything(t *testing.T) {
	t.Parallel()
	url := testenv.StartEverything(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	plain := connect(t, testOptions(), Server{URL: url})
	tools, err := plain.Tools(ctx)
	require.NoError(t, err)
	require.NotContains(t, toolNames(tools), "trigger-elicitation-request")
	require.NotContains(t, toolNames(tools), "trigger-sampling-request")

	var elicited atomic.Pointer[ElicitRequest]
	var sampled atomic.Pointer[SampleRequest]
	action := atomic.Value{}
	action.Store(ElicitAccept)
	opts := testOptions()
	opts.ElicitFunc = func(ctx context.Context, req ElicitRequest) (*ElicitResult, error) {
		elicited.Store(&req)
		time.Sleep(200 * time.Millisecond) // a person takes a moment
		a := action.Load().(string)
		if a != ElicitAccept {
			return &ElicitResult{Action: a}, nil
		}
		return &ElicitResult{Action: a, Content: json.RawMessage(`{"name":"Ada Lovelace","integer":7}`)}, nil
	}
	opts.SampleFunc = func(ctx context.Context, req SampleRequest) (json.RawMessage, error) {
		sampled.Store(&req)
		return json.RawMessage(`{"role":"assistant","content":{"type":"text","text":"sampled answer 42"},"model":"test-model","stopReason":"endTurn"}`), nil
	}
	s := connect(t, opts, Server{URL: url})
	tools, err = s.Tools(ctx)
	require.NoError(t, err)
	require.Contains(t, toolNames(tools), "trigger-elicitation-request")
	require.Contains(t, toolNames(tools), "trigger-sampling-request")

	res, err := s.CallTool(ctx, "trigger-elicitation-request", nil)
	require.NoError(t, err)
	require.Contains(t, res.Text, "Name: Ada Lovelace")
	require.Contains(t, res.Text, "Favorite Integer: 7")
	got := elicited.Load()
	require.NotNil(t, got)
	require.Equal(t, url, got.ServerURL)
	require.Equal(t, ElicitModeForm, got.Mode)
	require.Contains(t, string(got.RequestedSchema), `"firstLine"`)

	action.Store(ElicitDecline)
	res, err = s.CallTool(ctx, "trigger-elicitation-request", nil)
	require.NoError(t, err)
	require.Contains(t, res.Text, "declined")

	res, err = s.CallTool(ctx, "trigger-sampling-request", json.RawMessage(`{"prompt":"say hi","maxTokens":50}`))
	require.NoError(t, err)
	require.False(t, res.IsError, res.Text)
	require.Contains(t, res.Text, "sampled answer 42")
	sreq := sampled.Load()
	require.NotNil(t, sreq)
	require.Contains(t, string(sreq.Params), "say hi")
	require.Contains(t, string(sreq.Params), `"maxTokens":50`)
}
