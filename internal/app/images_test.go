package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

// callThenAnswer scripts a model that calls one MCP tool, then answers
// once a tool result is in the conversation (images follow it in a user
// message, so the tool message is not always the last one).
func callThenAnswer(t testing.TB, tool string) func(req llmtest.Request) llmtest.Response {
	return func(req llmtest.Request) llmtest.Response {
		for _, m := range req.Messages {
			if m.Role == "tool" {
				return llmtest.Response{Content: "I looked at it."}
			}
		}
		return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, tool), Arguments: "{}"}}}
	}
}

// rawMessage is a chat message of a model request with its content left
// as sent.
type rawMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

// imagesAfterTool returns the images of the user message that follows the
// tool messages of a model request, decoded from their data URLs, failing
// the test when the request is not shaped so.
func imagesAfterTool(t *testing.T, body []byte) map[string][]byte {
	t.Helper()
	var req struct {
		Messages []rawMessage `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(body, &req))
	last := len(req.Messages) - 1
	require.GreaterOrEqual(t, last, 1)
	require.Equal(t, "tool", req.Messages[last-1].Role, "the images follow the tool message: %s", body)
	require.Equal(t, "user", req.Messages[last].Role)
	var parts []contentPart
	require.NoError(t, json.Unmarshal(req.Messages[last].Content, &parts), "content parts: %s", req.Messages[last].Content)
	images := map[string][]byte{}
	for _, p := range parts {
		if p.Type != "image_url" {
			continue
		}
		mimeType, data, ok := strings.Cut(strings.TrimPrefix(p.ImageURL.URL, "data:"), ";base64,")
		require.True(t, ok, "a data URL: %.60s", p.ImageURL.URL)
		raw, err := base64.StdEncoding.DecodeString(data)
		require.NoError(t, err)
		images[mimeType] = raw
	}
	return images
}

var markdownImage = regexp.MustCompile(`!\[([^\]]*)\]\(([^)\s]+)\)`)

// The reference server's get-tiny-image tool, from a task: the model sees
// the picture, the result page links it, the link serves it.
func TestTaskImageFromServerEverything(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(callThenAnswer(t, "get-tiny-image"))
		tk := env.submit(t, keyAcme, map[string]any{
			"user": "bob", "model": "gpt-test", "input": "Show me the logo",
			"tools": []map[string]any{{"type": "mcp", "server_url": everything, "allowed_tools": []string{"get-tiny-image"}}},
		})
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)

		reqs := env.Model.Requests()
		require.Len(t, reqs, 2)
		sent := imagesAfterTool(t, reqs[1].Body)
		png := sent["image/png"]
		require.True(t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "the model got the PNG")
		require.Contains(t, reqs[1].Messages[len(reqs[1].Messages)-2].Content, "bytes: attached below]")

		status, md, _ := call(t, "GET", tk.ResultURLs.Markdown, "", nil)
		require.Equal(t, http.StatusOK, status)
		links := markdownImage.FindAllStringSubmatch(string(md), -1)
		require.Len(t, links, 1, string(md))
		token := strings.TrimSuffix(strings.TrimPrefix(tk.ResultURLs.Markdown, env.URL+"/r/"), ".md")
		require.Equal(t, env.URL+"/r/"+token+"/images/1/0", links[0][2])
		require.Contains(t, links[0][1], "image/png")

		status, body, hdr := call(t, "GET", links[0][2], "", nil)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, "image/png", hdr.Get("Content-Type"))
		require.Equal(t, "nosniff", hdr.Get("X-Content-Type-Options"))
		require.Empty(t, hdr.Get("Content-Disposition"))
		require.Equal(t, png, body, "the page serves what the model saw")

		// The task object links the image instead of carrying it.
		status, raw, _ := call(t, "GET", env.URL+"/v1/tasks/"+tk.ID, keyAcme, nil)
		require.Equal(t, http.StatusOK, status)
		var obj struct {
			Steps []struct {
				Images []map[string]any `json:"images"`
			} `json:"steps"`
		}
		require.NoError(t, json.Unmarshal(raw, &obj))
		require.Len(t, obj.Steps[1].Images, 1)
		require.Equal(t, map[string]any{"mime_type": "image/png", "size": float64(len(png)), "url": links[0][2]}, obj.Steps[1].Images[0])

		for _, missing := range []string{"/images/1/1", "/images/0/0", "/images/9/0", "/images/x/0", "/images/-1/0"} {
			status, _, _ = call(t, "GET", env.URL+"/r/"+token+missing, "", nil)
			require.Equal(t, http.StatusNotFound, status, missing)
		}
		status, _, _ = call(t, "GET", env.URL+"/r/not-a-token/images/1/0", "", nil)
		require.Equal(t, http.StatusNotFound, status)

		status, raw, _ = call(t, "DELETE", env.URL+"/v1/tasks/"+tk.ID, keyAcme, nil)
		require.Equal(t, http.StatusOK, status, string(raw))
		status, _, _ = call(t, "GET", links[0][2], "", nil)
		require.Equal(t, http.StatusNotFound, status, "the image goes with its task")
	})
}

var (
	svgImage  = []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`)
	htmlImage = []byte(`<html><script>alert(1)</script></html>`)
)

// startImageServer starts an MCP server with a tool whose images are not
// all safe to show.
func startImageServer(t *testing.T) string {
	t.Helper()
	s := server.NewMCPServer("images", "1.0.0")
	s.AddTool(mcp.NewTool("draw", mcp.WithDescription("Draws.")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			enc := base64.StdEncoding.EncodeToString
			return &mcp.CallToolResult{Content: []mcp.Content{
				mcp.NewImageContent(enc(svgImage), "image/svg+xml"),
				mcp.NewImageContent(enc(htmlImage), "text/html"),
				mcp.NewImageContent("iVBORw0KGgo…[truncated 3000 bytes]", "image/png"),
				mcp.NewImageContent(enc([]byte("GIF89a tiny")), "image/gif"),
			}}, nil
		})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// Images a browser must not run are served as downloads; data cut short
// is a placeholder.
func TestTaskImagesServedSafely(t *testing.T) {
	t.Parallel()
	mcpURL := startImageServer(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(callThenAnswer(t, "draw"))
		tk := env.submit(t, keyAcme, map[string]any{
			"user": "bob", "model": "gpt-test", "input": "Draw",
			"tools": []map[string]any{{"type": "mcp", "server_url": mcpURL}},
		})
		done := waitDone(t, tk)
		require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
		require.Equal(t, strings.Join([]string{
			fmt.Sprintf("[image image/svg+xml, %d bytes — not shown]", len(svgImage)),
			fmt.Sprintf("[image text/html, %d bytes — not shown]", len(htmlImage)),
			"[image image/png — invalid data, not shown]",
			"[image image/gif, 11 bytes: attached below]",
		}, "\n"), done.Steps[1].Output)

		reqs := env.Model.Requests()
		require.Len(t, reqs, 2)
		require.Equal(t, map[string][]byte{"image/gif": []byte("GIF89a tiny")}, imagesAfterTool(t, reqs[1].Body),
			"only types vision models take are sent")

		token := strings.TrimSuffix(strings.TrimPrefix(tk.ResultURLs.Markdown, env.URL+"/r/"), ".md")
		status, md, _ := call(t, "GET", tk.ResultURLs.Markdown, "", nil)
		require.Equal(t, http.StatusOK, status)
		base := env.URL + "/r/" + token + "/images/1/"
		require.Contains(t, string(md), fmt.Sprintf("[image 1, image/svg+xml, %d bytes (download)](%s0)", len(svgImage), base))
		require.Contains(t, string(md), fmt.Sprintf("[image 2, text/html, %d bytes (download)](%s1)", len(htmlImage), base))
		require.Contains(t, string(md), "![image 3, image/gif, 11 bytes]("+base+"2)")
		require.Contains(t, string(md), "[image image/png — invalid data, not shown]")

		for n, want := range []struct {
			contentType, disposition string
			body                     []byte
		}{
			{"application/octet-stream", `attachment; filename="image-1-0"`, svgImage},
			{"application/octet-stream", `attachment; filename="image-1-1"`, htmlImage},
			{"image/gif", "", []byte("GIF89a tiny")},
		} {
			status, body, hdr := call(t, "GET", fmt.Sprintf("%s%d", base, n), "", nil)
			require.Equal(t, http.StatusOK, status, string(body))
			require.Equal(t, want.body, body)
			require.Equal(t, want.contentType, hdr.Get("Content-Type"), n)
			require.Equal(t, want.disposition, hdr.Get("Content-Disposition"), n)
			require.Equal(t, "nosniff", hdr.Get("X-Content-Type-Options"))
		}
	})
}

// The chat proxy sends a tool's image to the model the same way.
func TestChatImageFromServerEverything(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverything(t)
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL)
		env.Model.Handle(callThenAnswer(t, "get-tiny-image"))
		status, raw, _ := call(t, "POST", env.URL+"/v1/chat/completions", keyAcme, map[string]any{
			"model": "gpt-test", "user": "alice",
			"messages": []map[string]any{{"role": "user", "content": "Show me the logo"}},
			"tools":    []map[string]any{{"type": "mcp", "url": everything}},
		})
		require.Equal(t, http.StatusOK, status, string(raw))

		reqs := env.Model.Requests()
		require.Len(t, reqs, 2)
		png := imagesAfterTool(t, reqs[1].Body)["image/png"]
		require.True(t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "the model got the PNG")

		var resp struct {
			Choices []struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal(raw, &resp))
		content := resp.Choices[0].Message.Content
		links := markdownImage.FindAllStringSubmatch(content, -1)
		require.Len(t, links, 1, content)
		require.Equal(t, "data:image/png;base64,"+base64.StdEncoding.EncodeToString(png), links[0][2],
			"the answer shows the small image inline")
		require.True(t, strings.HasSuffix(content, "I looked at it."), content)
	})
}
