package app_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBadRequestsGetClearErrors(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL, func(o *envOpts) { o.env["MCPIDP_MAX_BODY_BYTES"] = "65536" })
		good := func(extra map[string]any) map[string]any {
			m := map[string]any{"user": "u", "model": "m", "input": "hi"}
			for k, v := range extra {
				if v == nil {
					delete(m, k)
				} else {
					m[k] = v
				}
			}
			return m
		}
		manyServers := make([]map[string]any, 21)
		for i := range manyServers {
			manyServers[i] = map[string]any{"type": "mcp", "url": fmt.Sprintf("https://s%d.example.com/mcp", i)}
		}
		manyMessages := make([]map[string]any, 1001)
		for i := range manyMessages {
			manyMessages[i] = map[string]any{"role": "user", "content": "x"}
		}
		cases := []struct {
			name    string
			key     string
			body    any
			status  int
			code    string
			param   string
			message string
		}{
			{"no key", "", good(nil), 401, "missing_api_key", "", "Authorization: Bearer"},
			{"wrong key", "nope-nope-nope-nope", good(nil), 401, "invalid_api_key", "", "invalid API key"},
			{"bad JSON", keyAcme, `{"user":`, 400, "invalid_json", "", "JSON object"},
			{"not an object", keyAcme, `[1,2]`, 400, "invalid_json", "", "JSON object"},
			{"missing user", keyAcme, good(map[string]any{"user": nil}), 400, "missing_required_parameter", "user", "user"},
			{"user not a string", keyAcme, good(map[string]any{"user": 5}), 400, "invalid_value", "user", "user must be a string"},
			{"missing model", keyAcme, good(map[string]any{"model": nil}), 400, "missing_required_parameter", "model", "model"},
			{"no messages", keyAcme, good(map[string]any{"input": nil}), 400, "missing_required_parameter", "messages", "messages"},
			{"both input and messages", keyAcme, good(map[string]any{"messages": []map[string]any{{"role": "user", "content": "x"}}}), 400, "invalid_value", "input", "not both"},
			{"message without role", keyAcme, good(map[string]any{"input": nil, "messages": []map[string]any{{"content": "x"}}}), 400, "invalid_value", "messages[0]", "role"},
			{"too many messages", keyAcme, good(map[string]any{"input": nil, "messages": manyMessages}), 400, "invalid_value", "messages", "too many messages"},
			{"tool not mcp", keyAcme, good(map[string]any{"tools": []map[string]any{{"type": "web_search"}}}), 400, "invalid_value", "tools[0].type", `"mcp"`},
			{"mcp without url", keyAcme, good(map[string]any{"tools": []map[string]any{{"type": "mcp"}}}), 400, "missing_required_parameter", "tools[0].url", "tools[0].url"},
			{"mcp url not http", keyAcme, good(map[string]any{"tools": []map[string]any{{"type": "mcp", "url": "file:///etc/passwd"}}}), 400, "invalid_value", "tools[0].url", "http or https"},
			{"mcp url relative", keyAcme, good(map[string]any{"tools": []map[string]any{{"type": "mcp", "url": "/mcp"}}}), 400, "invalid_value", "tools[0].url", "tools[0].url"},
			{"too many servers", keyAcme, good(map[string]any{"tools": manyServers}), 400, "invalid_value", "tools", "too many MCP servers"},
			{"header not allowed", keyAcme, good(map[string]any{"tools": []map[string]any{{"type": "mcp", "url": "https://x.example.com/mcp", "headers": map[string]string{"Host": "evil"}}}}), 400, "invalid_value", "tools[0].headers", "cannot be set"},
			{"max_steps too big", keyAcme, good(map[string]any{"max_steps": 1000}), 400, "invalid_value", "max_steps", "from 1 to 100"},
			{"stop_when bad type", keyAcme, good(map[string]any{"stop_when": []map[string]any{{"type": "never"}}}), 400, "invalid_value", "stop_when[0].type", "tool_called"},
			{"metadata not object", keyAcme, good(map[string]any{"metadata": "x"}), 400, "invalid_value", "metadata", "JSON object"},
			{"callback not http", keyAcme, good(map[string]any{"authorizationRequestCallback": "gopher://x"}), 400, "invalid_value", "authorizationRequestCallback", "http or https"},
			{"user with NUL", keyAcme, `{"user":"a\u0000b","model":"m","input":"hi"}`, 400, "invalid_value", "user", "NUL"},
			{"model with NUL", keyAcme, `{"user":"u","model":"m\u0000","input":"hi"}`, 400, "invalid_value", "model", "NUL"},
			{"user not UTF-8", keyAcme, "{\"user\":\"a\xffb\",\"model\":\"m\",\"input\":\"hi\"}", 400, "invalid_json", "", "UTF-8"},
			{"metadata with NUL", keyAcme, good(map[string]any{"metadata": map[string]any{"k": "a\x00b"}}), 400, "invalid_value", "metadata", "NUL"},
			{"metadata key with NUL", keyAcme, good(map[string]any{"metadata": map[string]any{"k\x00": "v"}}), 400, "invalid_value", "metadata", "NUL"},
			{"metadata not UTF-8", keyAcme, "{\"user\":\"u\",\"model\":\"m\",\"input\":\"hi\",\"metadata\":{\"k\":\"\xc3\x28\"}}", 400, "invalid_json", "", "UTF-8"},
			{"input not UTF-8", keyAcme, "{\"user\":\"u\",\"model\":\"m\",\"input\":\"h\xe9\"}", 400, "invalid_json", "", "UTF-8"},
			{"body too large", keyAcme, good(map[string]any{"input": strings.Repeat("x", 70000)}), 413, "request_too_large", "", "64 KiB"},
		}
		for _, c := range cases {
			status, raw, _ := call(t, "POST", env.URL+"/v1/tasks", c.key, c.body)
			require.Equal(t, c.status, status, "%s: %s", c.name, raw)
			var e struct {
				Error struct {
					Type, Code, Message, Param string
				} `json:"error"`
			}
			require.NoError(t, json.Unmarshal(raw, &e), c.name)
			require.Equal(t, c.code, e.Error.Code, c.name)
			require.Equal(t, c.param, e.Error.Param, c.name)
			require.Contains(t, e.Error.Message, c.message, c.name)
			require.NotEmpty(t, e.Error.Type, c.name)
		}
		for _, key := range []string{"k\xffk", "k\xc3"} {
			status, raw, _ := call(t, "POST", env.URL+"/v1/tasks", keyAcme, good(nil), "Idempotency-Key", key)
			require.Equal(t, http.StatusBadRequest, status, "Idempotency-Key %q: %s", key, raw)
			require.Contains(t, string(raw), `"param":"Idempotency-Key"`)
			require.Contains(t, string(raw), "UTF-8")
		}
		require.Empty(t, env.Model.Requests(), "no bad request reached the model")

		status, raw, _ := call(t, "GET", env.URL+"/v1/tasks?user=u", keyAcme, nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, string(raw), `"data":[]`, "no bad request created a task")

		for _, c := range []struct{ method, path string }{
			{"GET", "/v1/tasks/task_doesnotexist"},
			{"POST", "/v1/tasks/task_doesnotexist/cancel"},
			{"DELETE", "/v1/tasks/task_doesnotexist"},
			{"GET", "/r/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.json"},
			{"GET", "/r/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.md"},
		} {
			status, raw, _ := call(t, c.method, env.URL+c.path, keyAcme, nil)
			require.Equal(t, http.StatusNotFound, status, c.path)
			require.Contains(t, string(raw), `"code":"not_found"`)
		}
		// Ids and query parameters PostgreSQL could not even compare.
		for _, c := range []struct{ method, path, param string }{
			{"GET", "/v1/tasks/task_%00", "id"},
			{"GET", "/v1/tasks/task_%FF", "id"},
			{"POST", "/v1/tasks/task_%00/cancel", "id"},
			{"DELETE", "/v1/tasks/%C3", "id"},
			{"GET", "/v1/tasks/task_%00/deliveries", "id"},
			{"GET", "/v1/tasks?user=a%00b", "user"},
			{"GET", "/v1/tasks?user=%FF", "user"},
			{"GET", "/v1/tasks?after=task_%00", "after"},
			{"GET", "/v1/connections?user=%00", "user"},
			{"DELETE", "/v1/connections/conn_%FF", "id"},
			{"GET", "/r/AAAA%00.json", "file"},
			{"GET", "/r/AAAA%FF.md?wait=1", "file"},
			{"GET", "/oauth/start/%00", "id"},
		} {
			status, raw, _ := call(t, c.method, env.URL+c.path, keyAcme, nil)
			require.Equal(t, http.StatusBadRequest, status, "%s %s: %s", c.method, c.path, raw)
			require.Contains(t, string(raw), `"param":"`+c.param+`"`, c.path)
		}
		status, raw, _ = call(t, "POST", env.URL+"/v1/connections", keyAcme, `{"user":"a\u0000","server_url":"https://mcp.example.com/mcp"}`)
		require.Equal(t, http.StatusBadRequest, status, string(raw))
		require.Contains(t, string(raw), `"param":"user"`)
		// A NUL in a header is refused by the HTTP server itself.
		status = rawRequest(t, env.URL, "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+keyAcme+
			"\r\nIdempotency-Key: a\x00b\r\nContent-Length: 2\r\n\r\n{}")
		require.Equal(t, http.StatusBadRequest, status)

		status, raw, _ = call(t, "GET", env.URL+"/v1/tasks?status=sleeping", keyAcme, nil)
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, string(raw), `"param":"status"`)
		status, raw, _ = call(t, "GET", env.URL+"/v1/tasks?limit=0", keyAcme, nil)
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, string(raw), `"param":"limit"`)

		status, _, _ = call(t, "GET", env.URL+"/healthz", "", nil)
		require.Equal(t, http.StatusOK, status)
		status, raw, _ = call(t, "GET", env.URL+"/readyz", "", nil)
		require.Equal(t, http.StatusOK, status, string(raw))
	})
}

// rawRequest writes a request byte for byte (what http.Client refuses to
// send) and returns the answer's status.
func rawRequest(t *testing.T, baseURL, request string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte(request))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}
