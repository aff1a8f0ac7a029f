package agentloop_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
)

var pngBytes = []byte("\x89PNG\r\n\x1a\n not really a picture")

// startRichServer starts an MCP server whose tools answer with everything
// but plain text.
func startRichServer(t *testing.T) string {
	t.Helper()
	s := server.NewMCPServer("rich", "1.0.0")
	b64 := base64.StdEncoding.EncodeToString(pngBytes)
	s.AddTool(mcp.NewTool("shot", mcp.WithDescription("A screenshot and more.")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{
				Content: []mcp.Content{
					mcp.NewTextContent("the page"),
					mcp.NewImageContent(b64, "image/png"),
					mcp.NewImageContent(b64[:12]+"…[truncated 20 bytes]", "image/png"),
					mcp.NewAudioContent(base64.StdEncoding.EncodeToString(make([]byte, 12345)), "audio/wav"),
					mcp.NewEmbeddedResource(mcp.TextResourceContents{URI: "file:///a.txt", MIMEType: "text/plain", Text: "embedded text"}),
					mcp.NewEmbeddedResource(mcp.BlobResourceContents{URI: "file:///b.bin", MIMEType: "application/zip", Blob: "AAEC"}),
					mcp.NewResourceLink("file:///c.pdf", "report", "the report", "application/pdf"),
				},
				StructuredContent: map[string]any{"title": "Example", "links": 3},
			}, nil
		})
	s.AddTool(mcp.NewTool("many", mcp.WithDescription("Images, ten tiny ones by default."), mcp.WithNumber("count"), mcp.WithNumber("size")),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			size := req.GetInt("size", 1)
			var content []mcp.Content
			for range req.GetInt("count", 10) {
				content = append(content, mcp.NewImageContent(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, size)), "image/gif"))
			}
			return &mcp.CallToolResult{Content: content}, nil
		})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// scriptedModel answers with the given completions in order and keeps the
// request bodies.
type scriptedModel struct {
	mu      sync.Mutex
	answers []llm.Message
	bodies  [][]byte
}

func (m *scriptedModel) complete(_ context.Context, body []byte) (*llm.Completion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bodies = append(m.bodies, body)
	if len(m.answers) == 0 {
		return nil, fmt.Errorf("no scripted answer")
	}
	msg := m.answers[0]
	m.answers = m.answers[1:]
	return &llm.Completion{Choices: []llm.Choice{{Message: msg}}}, nil
}

func callTool(id, function, arguments string) llm.Message {
	return llm.Message{Role: "assistant", ToolCalls: []llm.ToolCall{{ID: id, Type: "function", Function: llm.FunctionCall{Name: function, Arguments: arguments}}}}
}

func connectTools(t *testing.T, url string) *agentloop.MCPTools {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	connect := func(ctx context.Context, srv mcpclient.Server) (*mcpclient.Session, error) {
		// Room for the large images these tests send: the image limits are
		// under test here, not the tool-result bound (MaxToolResultBytes).
		return mcpclient.Connect(ctx, mcpclient.Options{HTTPClient: &http.Client{}, Limits: mcpclient.Limits{MaxToolResultBytes: 64 << 20}}, srv)
	}
	tools, err := agentloop.ConnectMCP(ctx, connect, []mcpclient.Server{{URL: url}})
	require.NoError(t, err)
	t.Cleanup(tools.Close)
	return tools
}

func functionFor(t *testing.T, tools *agentloop.MCPTools, tool string) string {
	t.Helper()
	for _, raw := range tools.FunctionTools() {
		var ft struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		require.NoError(t, json.Unmarshal(raw, &ft))
		if strings.HasSuffix(ft.Function.Name, "__"+tool) || ft.Function.Name == tool {
			return ft.Function.Name
		}
	}
	t.Fatalf("tool %s not offered", tool)
	return ""
}

// message is a chat message with its content left raw.
type message struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCallID string          `json:"tool_call_id"`
}

type part struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

func requestMessages(t *testing.T, body []byte) []message {
	t.Helper()
	var req struct {
		Messages []message `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(body, &req))
	return req.Messages
}

func TestToolResultBesidesText(t *testing.T) {
	t.Parallel()

	tools := connectTools(t, startRichServer(t))
	shot := functionFor(t, tools, "shot")
	model := &scriptedModel{answers: []llm.Message{
		{Role: "assistant", ToolCalls: []llm.ToolCall{
			{ID: "call_a", Type: "function", Function: llm.FunctionCall{Name: shot, Arguments: "{}"}},
			{ID: "call_b", Type: "function", Function: llm.FunctionCall{Name: shot, Arguments: "{}"}},
		}},
		{Role: "assistant", Content: "a page with three links"},
	}}
	var recorded []agentloop.Step
	run := &agentloop.Run{
		Body:     json.RawMessage(`{"model":"m"}`),
		Messages: []json.RawMessage{json.RawMessage(`{"role":"user","content":"look"}`)},
		Complete: model.complete,
		Tools:    tools,
		Record: func(_ context.Context, _ int, st agentloop.Step) error {
			recorded = append(recorded, st)
			return nil
		},
	}
	out, err := run.Execute(context.Background())
	require.NoError(t, err)
	require.Equal(t, agentloop.ReasonFinal, out.Reason)
	require.Len(t, recorded, 4)

	st := recorded[1]
	require.Equal(t, strings.Join([]string{
		"the page",
		fmt.Sprintf("[image image/png, %d bytes: attached below]", len(pngBytes)),
		"[image image/png — invalid data, not shown]",
		"[audio audio/wav, 12345 bytes — not shown]",
		"embedded text",
		"[resource file:///b.bin application/zip, 3 bytes — not shown]",
		"[resource link report: file:///c.pdf]",
	}, "\n"), st.Output)
	require.Equal(t, []agentloop.Image{{MIMEType: "image/png", Size: len(pngBytes), Data: pngBytes}}, st.Images,
		"the truncated image is left out")
	require.JSONEq(t, `{"title":"Example","links":3}`, string(st.StructuredContent))
	require.Len(t, st.Resources, 3)
	require.JSONEq(t, `{"type":"resource","resource":{"uri":"file:///a.txt","mimeType":"text/plain","text":"embedded text"}}`, string(st.Resources[0]))
	require.JSONEq(t, `{"type":"resource","resource":{"uri":"file:///b.bin","mimeType":"application/zip","blob":"AAEC"}}`, string(st.Resources[1]))
	require.Contains(t, string(st.Resources[2]), `"uri":"file:///c.pdf"`)

	// The step survives storage as JSON, images included.
	raw, err := json.Marshal(st)
	require.NoError(t, err)
	var back agentloop.Step
	require.NoError(t, json.Unmarshal(raw, &back))
	require.Equal(t, st.Images, back.Images)
	require.JSONEq(t, string(st.StructuredContent), string(back.StructuredContent))

	// The next request: the tool messages, then one user message with both
	// images.
	require.Len(t, model.bodies, 2)
	msgs := requestMessages(t, model.bodies[1])
	require.Len(t, msgs, 5)
	require.Equal(t, []string{"user", "assistant", "tool", "tool", "user"},
		[]string{msgs[0].Role, msgs[1].Role, msgs[2].Role, msgs[3].Role, msgs[4].Role})
	var toolText string
	require.NoError(t, json.Unmarshal(msgs[2].Content, &toolText))
	require.Equal(t, st.Output, toolText, "the tool message is text only")
	var parts []part
	require.NoError(t, json.Unmarshal(msgs[4].Content, &parts))
	require.Len(t, parts, 4)
	dataURL := "data:image/png;base64," + base64.StdEncoding.EncodeToString(pngBytes)
	require.Equal(t, "text", parts[0].Type)
	require.Contains(t, parts[0].Text, "call_a")
	require.Equal(t, "image_url", parts[1].Type)
	require.Equal(t, dataURL, parts[1].ImageURL.URL)
	require.Contains(t, parts[2].Text, "call_b")
	require.Equal(t, dataURL, parts[3].ImageURL.URL)

	// A resumed run rebuilds the same conversation from the stored steps.
	require.Equal(t, msgs, requestMessages(t, mustBody(t, run.Messages, recorded[:3])))
}

func mustBody(t *testing.T, initial []json.RawMessage, steps []agentloop.Step) []byte {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"messages": agentloop.Messages(initial, steps)})
	require.NoError(t, err)
	return raw
}

func TestImageLimits(t *testing.T) {
	t.Parallel()

	tools := connectTools(t, startRichServer(t))
	many := functionFor(t, tools, "many")
	model := &scriptedModel{answers: []llm.Message{
		callTool("c2", many, `{}`),
		callTool("c3", many, `{}`),
		{Role: "assistant", Content: "done"},
	}}
	var recorded []agentloop.Step
	record := func(_ context.Context, _ int, st agentloop.Step) error {
		recorded = append(recorded, st)
		return nil
	}
	// The first call ran in an earlier segment of the run.
	earlier := []agentloop.Step{{Type: agentloop.StepModel, ToolCalls: callTool("c1", many, `{}`).ToolCalls}}
	res, err := tools.Call(context.Background(), many, json.RawMessage(`{}`))
	require.NoError(t, err)
	require.Len(t, res.Images, 10)
	earlier = append(earlier, agentloop.Step{Type: agentloop.StepTool, ToolCallID: "c1", Function: many, Output: "earlier", Images: res.Images[:agentloop.MaxStepImages]})

	run := &agentloop.Run{Body: json.RawMessage(`{}`), Steps: earlier, Complete: model.complete, Tools: tools, Record: record, MaxSteps: 10}
	_, err = run.Execute(context.Background())
	require.NoError(t, err)
	require.Len(t, recorded, 5)
	second, third := recorded[1], recorded[3]
	require.Len(t, second.Images, agentloop.MaxStepImages, "at most MaxStepImages per call")
	require.Equal(t, 8, strings.Count(second.Output, "attached below"))
	require.Equal(t, 2, strings.Count(second.Output, "over the image limit, not shown"))
	require.Len(t, third.Images, agentloop.MaxRunImages-2*agentloop.MaxStepImages, "at most MaxRunImages per run, earlier segments included")
	require.Equal(t, 6, strings.Count(third.Output, "over the image limit, not shown"))

	// Bytes count too: two images of 3 MiB do not fit one step.
	model = &scriptedModel{answers: []llm.Message{callTool("big", many, `{"count":2,"size":3145728}`), {Role: "assistant", Content: "done"}}}
	recorded = nil
	run = &agentloop.Run{Body: json.RawMessage(`{}`), Complete: model.complete, Tools: tools, Record: record}
	_, err = run.Execute(context.Background())
	require.NoError(t, err)
	require.Len(t, recorded[1].Images, 1)
	require.Equal(t, 1, strings.Count(recorded[1].Output, "over the image limit, not shown"))
}

func TestToolMarkdownImages(t *testing.T) {
	t.Parallel()

	small := agentloop.Image{MIMEType: "image/png", Size: len(pngBytes), Data: pngBytes}
	big := agentloop.Image{MIMEType: "image/jpeg", Size: agentloop.MaxInlineImageBytes + 1, Data: make([]byte, agentloop.MaxInlineImageBytes+1)}
	svg := agentloop.Image{MIMEType: "image/svg+xml", Size: 5, Data: []byte("<svg/")}
	st := agentloop.Step{Type: agentloop.StepTool, Tool: "shot", ServerURL: "https://mcp.example.com/mcp", Output: "x", Images: []agentloop.Image{small, big, svg}}

	md := agentloop.ToolMarkdown(st)
	require.Contains(t, md, fmt.Sprintf("![image 1, image/png, %d bytes](data:image/png;base64,%s)", len(pngBytes), base64.StdEncoding.EncodeToString(pngBytes)),
		"a small image is inline")
	require.Contains(t, md, fmt.Sprintf("_[image 2, image/jpeg, %d bytes — not shown]_", agentloop.MaxInlineImageBytes+1))
	require.Contains(t, md, "_[image 3, image/svg+xml, 5 bytes — not shown]_", "SVG is never inline")
	require.Less(t, len(md), 1000, "bounded")
	require.True(t, strings.HasSuffix(md, "</details>\n\n"))

	for i := range st.Images {
		st.Images[i].URL = fmt.Sprintf("https://mcpidp.example.com/r/tok/images/1/%d", i)
		st.Images[i].Data = nil
	}
	md = agentloop.ToolMarkdown(st)
	require.Contains(t, md, fmt.Sprintf("![image 1, image/png, %d bytes](https://mcpidp.example.com/r/tok/images/1/0)", len(pngBytes)))
	require.Contains(t, md, "![image 2, image/jpeg, 8193 bytes](https://mcpidp.example.com/r/tok/images/1/1)")
	require.Contains(t, md, "[image 3, image/svg+xml, 5 bytes (download)](https://mcpidp.example.com/r/tok/images/1/2)")
	require.NotContains(t, md, "![image 3")
}
