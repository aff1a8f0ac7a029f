package agentloop

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
)

// samplingTools' one tool asks the run for a sampling `asks` times while it runs.
type samplingTools struct {
	run     *Run
	asks    int
	answers []string
	errs    []error
}

func (s *samplingTools) FunctionTools() []json.RawMessage { return nil }

func (s *samplingTools) Resolve(function string) (string, string, bool) {
	return "https://mcp.example.com/mcp", function, true
}

func (s *samplingTools) Call(ctx context.Context, _ string, _ json.RawMessage) (*ToolResult, error) {
	for range s.asks {
		res, err := s.run.Sample(ctx, mcpclient.SampleRequest{ServerURL: "https://mcp.example.com/mcp",
			Params: json.RawMessage(`{"messages":[{"role":"user","content":{"type":"text","text":"hi"}}],"systemPrompt":"be brief","maxTokens":5}`)})
		s.errs = append(s.errs, err)
		if err == nil {
			var r struct {
				Content struct{ Text string } `json:"content"`
			}
			if err := json.Unmarshal(res, &r); err != nil {
				return nil, err
			}
			s.answers = append(s.answers, r.Content.Text)
		}
	}
	return &ToolResult{Text: "tool done"}, nil
}

// Sampling is recorded as a step, counted in usage and toward max_steps (a
// request past the limit is refused), and kept out of the conversation; a
// call's mark slot skips the sampling steps recorded while it ran.
func TestSamplingStepsCountTowardMaxSteps(t *testing.T) {
	t.Parallel()
	var bodies []string
	var marks []int
	tools := &samplingTools{asks: 3}
	r := &Run{
		MaxSteps: 3,
		Body:     json.RawMessage(`{"model":"m","stream":true,"tool_choice":"auto"}`),
		Complete: func(_ context.Context, body []byte) (*llm.Completion, error) {
			bodies = append(bodies, string(body))
			usage := &llm.Usage{TotalTokens: 10}
			if len(bodies) == 1 {
				return &llm.Completion{Usage: usage, Choices: []llm.Choice{{Message: llm.Message{ToolCalls: []llm.ToolCall{{ID: "c1", Function: llm.FunctionCall{Name: "t", Arguments: "{}"}}}}}}}, nil
			}
			return &llm.Completion{Model: "m-1", Usage: usage, Choices: []llm.Choice{{FinishReason: "length", Message: llm.Message{Content: "sampled"}}}}, nil
		},
		Record: func(context.Context, int, Step) error { return nil },
		MarkCall: func(_ context.Context, index int, _ Step, _ bool) (bool, error) {
			marks = append(marks, index)
			return false, nil
		},
		Tools: tools,
	}
	tools.run = r
	_, err := r.Sample(context.Background(), mcpclient.SampleRequest{Params: json.RawMessage(`{"messages":[]}`)})
	require.ErrorIs(t, err, ErrSamplingRefused, "no run is executing")

	out, err := r.Execute(context.Background())
	require.NoError(t, err)
	require.Equal(t, ReasonMaxSteps, out.Reason)
	require.Equal(t, []string{"sampled", "sampled"}, tools.answers)
	require.ErrorIs(t, tools.errs[2], ErrSamplingRefused, "the third would pass max_steps")
	var types []string
	for _, st := range out.Steps {
		types = append(types, st.Type)
	}
	require.Equal(t, []string{StepModel, StepSampling, StepSampling, StepTool}, types)
	require.Equal(t, 30, out.Usage.TotalTokens)
	require.Equal(t, []int{1}, marks)
	require.Equal(t, "sampled", out.Steps[1].Content)

	require.Len(t, bodies, 3)
	sample := bodies[1]
	require.JSONEq(t, `{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":5}`, sample)
	require.Len(t, Messages(nil, out.Steps), 2, "sampling steps are not part of the conversation")
	require.Equal(t, 1, callSlot(out.Steps[:3]))
	require.Equal(t, 4, callSlot(out.Steps))
}

// concurrentSampler's tool has the server send a second sampling request
// while its first is still with the model, as MCP clients handle server
// requests concurrently.
type concurrentSampler struct {
	run      *Run
	entered  chan struct{}
	release  chan struct{}
	firstErr error
	second   error
}

func (s *concurrentSampler) FunctionTools() []json.RawMessage { return nil }

func (s *concurrentSampler) Resolve(function string) (string, string, bool) {
	return "https://mcp.example.com/mcp", function, true
}

func (s *concurrentSampler) Call(ctx context.Context, _ string, _ json.RawMessage) (*ToolResult, error) {
	req := mcpclient.SampleRequest{ServerURL: "https://mcp.example.com/mcp",
		Params: json.RawMessage(`{"messages":[{"role":"user","content":{"type":"text","text":"hi"}}]}`)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, s.firstErr = s.run.Sample(ctx, req)
	}()
	<-s.entered
	_, s.second = s.run.Sample(ctx, req)
	close(s.release)
	<-done
	return &ToolResult{Text: "tool done"}, nil
}

// Two sampling requests in flight at once cannot both take the run's last
// step under max_steps.
func TestConcurrentSamplingKeepsMaxSteps(t *testing.T) {
	t.Parallel()
	tools := &concurrentSampler{entered: make(chan struct{}), release: make(chan struct{})}
	var calls atomic.Int32
	r := &Run{
		MaxSteps: 2,
		Complete: func(context.Context, []byte) (*llm.Completion, error) {
			switch calls.Add(1) {
			case 1:
				return &llm.Completion{Choices: []llm.Choice{{Message: llm.Message{ToolCalls: []llm.ToolCall{{ID: "c1", Function: llm.FunctionCall{Name: "t", Arguments: "{}"}}}}}}}, nil
			case 2:
				close(tools.entered)
				<-tools.release
			}
			return &llm.Completion{Choices: []llm.Choice{{Message: llm.Message{Content: "sampled"}}}}, nil
		},
		Record: func(context.Context, int, Step) error { return nil },
		Tools:  tools,
	}
	tools.run = r
	out, err := r.Execute(context.Background())
	require.NoError(t, err)
	require.NoError(t, tools.firstErr)
	require.ErrorIs(t, tools.second, ErrSamplingRefused)
	require.Equal(t, 2, countTurns(out.Steps), "one model turn and one sampling: max_steps 2")
	require.Equal(t, ReasonMaxSteps, out.Reason)
}

// A sampling step keeps the server's request without its media: an image's
// base64 data becomes its size; text and a request that does not parse stay.
func TestSamplingStepOmitsBinaryData(t *testing.T) {
	t.Parallel()
	params := json.RawMessage(`{"maxTokens":20,"messages":[` +
		`{"role":"user","content":{"type":"text","text":"describe"}},` +
		`{"role":"user","content":{"type":"image","mimeType":"image/png","data":"iVBORw0KGgo="}},` +
		`{"role":"user","content":[{"type":"audio","mimeType":"audio/wav","data":"UklGRg=="},{"type":"text","text":"and this"}]}]}`)
	got := withoutBinaryData(params)
	require.JSONEq(t, `{"maxTokens":20,"messages":[`+
		`{"role":"user","content":{"type":"text","text":"describe"}},`+
		`{"role":"user","content":{"type":"image","mimeType":"image/png","data":"[12 base64 characters omitted]"}},`+
		`{"role":"user","content":[{"type":"audio","mimeType":"audio/wav","data":"[8 base64 characters omitted]"},{"type":"text","text":"and this"}]}]}`, string(got))

	text := json.RawMessage(`{"messages":[{"role":"user","content":{"type":"text","text":"hi"}}]}`)
	require.Equal(t, string(text), string(withoutBinaryData(text)), "nothing to omit: kept byte for byte")
	require.Equal(t, "not json", string(withoutBinaryData(json.RawMessage("not json"))))
}
