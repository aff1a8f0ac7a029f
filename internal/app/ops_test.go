package app_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
)

const adminKey = "admin-key-0123456789abcdef"

func TestOperationsEndpoints(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, databaseURL string) {
		env := startEnv(t, databaseURL, func(o *envOpts) { o.env["MCPIDP_ADMIN_KEY"] = adminKey })
		env.Model.Handle(func(llmtest.Request) llmtest.Response { return llmtest.Response{Content: "ok"} })
		require.Equal(t, "completed", waitDone(t, env.submit(t, keyAcme, map[string]any{"user": "u", "model": "m", "input": "x"})).Status)

		// River records a job's completion shortly after the task ends.
		var metrics string
		require.Eventually(t, func() bool {
			status, raw, _ := call(t, "GET", env.URL+"/metrics", "", nil)
			metrics = string(raw)
			return status == http.StatusOK && regexp.MustCompile(`mcpidp_river_jobs\{state="completed"\} [1-9]`).MatchString(metrics)
		}, 10*time.Second, 50*time.Millisecond)
		require.Contains(t, metrics, `mcpidp_tasks{status="completed"} 1`)
		require.Contains(t, metrics, `mcpidp_http_requests_total{method="POST",route="/v1/tasks",status="202"} 1`)
		require.Contains(t, metrics, `mcpidp_http_request_duration_seconds_bucket{method="POST",route="/v1/tasks"`)
		require.Contains(t, metrics, "go_goroutines")

		// Every route is documented in /openapi.json.
		status, raw, _ := call(t, "GET", env.URL+"/openapi.json", "", nil)
		require.Equal(t, http.StatusOK, status)
		var doc struct {
			OpenAPI string                    `json:"openapi"`
			Paths   map[string]map[string]any `json:"paths"`
		}
		require.NoError(t, json.Unmarshal(raw, &doc))
		require.Equal(t, "3.1.0", doc.OpenAPI)
		param := regexp.MustCompile(`[:*]([a-z_]+)`)
		for _, r := range env.App.Handler().(*gin.Engine).Routes() {
			path := param.ReplaceAllString(r.Path, "{$1}")
			methods, ok := doc.Paths[path]
			require.True(t, ok, "route %s %s is missing from openapi.json", r.Method, path)
			if !strings.HasPrefix(path, "/admin/") {
				require.Contains(t, methods, strings.ToLower(r.Method), "route %s %s is missing from openapi.json", r.Method, path)
			}
		}

		// The River UI needs the admin key.
		status, _, hdr := call(t, "GET", env.URL+"/admin/riverui/", "", nil)
		require.Equal(t, http.StatusUnauthorized, status)
		require.Contains(t, hdr.Get("WWW-Authenticate"), "Basic")
		status, _, _ = call(t, "GET", env.URL+"/admin/riverui/", keyAcme, nil)
		require.Equal(t, http.StatusUnauthorized, status, "a tenant key is not the admin key")
		status, raw, hdr = call(t, "GET", env.URL+"/admin/riverui/", adminKey, nil)
		require.Equal(t, http.StatusOK, status, string(raw))
		require.Contains(t, hdr.Get("Content-Type"), "text/html")
		status, raw, _ = call(t, "GET", env.URL+"/admin/riverui/api/jobs?state=completed&limit=20", adminKey, nil)
		require.Equal(t, http.StatusOK, status, string(raw))
		require.Contains(t, string(raw), `"kind":"task_run"`)

		// The Bearer scheme is case-insensitive (RFC 7235), for the admin
		// key and tenant keys alike.
		status, raw, _ = call(t, "GET", env.URL+"/admin/riverui/", "", nil, "Authorization", "bearer "+adminKey)
		require.Equal(t, http.StatusOK, status, string(raw))
		status, raw, _ = call(t, "GET", env.URL+"/v1/tasks", "", nil, "Authorization", "BEARER  "+keyAcme)
		require.Equal(t, http.StatusOK, status, string(raw))
	})
}

func TestAdminUIIsOffWithoutKey(t *testing.T) {
	t.Parallel()
	env := startEnv(t, "sqlite:"+t.TempDir()+"/db")
	status, _, _ := call(t, "GET", env.URL+"/admin/riverui/", adminKey, nil)
	require.Equal(t, http.StatusNotFound, status)
}
