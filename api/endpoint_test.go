package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/task"
)

type echoRequest struct{ ID string }

func (r *echoRequest) bind(c *gin.Context) error {
	if c.Query("bad") != "" {
		return invalid("bad", "bad must be empty")
	}
	r.ID = c.Param("id")
	return nil
}

// TestHandle checks the one gin adapter: the request is bound, the answer
// chooses its status and headers, and errors of either step answer in the
// OpenAI error shape.
func TestHandle(t *testing.T) {
	t.Parallel()
	a := &API{cfg: Config{Logger: slog.New(slog.DiscardHandler)}}
	r := gin.New()
	r.GET("/tasks/:id", handle(a, func(_ context.Context, req *echoRequest) (*CreatedTask, error) {
		switch req.ID {
		case "missing":
			return nil, notFound("task " + req.ID)
		case "broken":
			return nil, errors.New("database on fire")
		}
		return &CreatedTask{Task: &task.Object{ID: req.ID, Object: "task", CreatedAt: time.Unix(0, 0).UTC()}, Replayed: req.ID == "again"}, nil
	}))
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}

	w := get("/tasks/t1")
	require.Equal(t, http.StatusAccepted, w.Code)
	require.Empty(t, w.Header().Get("Idempotent-Replayed"))
	var o map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &o))
	require.Equal(t, "t1", o["id"], "the answer is the task object itself: %s", w.Body)
	require.Equal(t, "task", o["object"])

	require.Equal(t, "true", get("/tasks/again").Header().Get("Idempotent-Replayed"))

	for path, want := range map[string]struct {
		status int
		code   string
	}{
		"/tasks/t1?bad=1": {http.StatusBadRequest, "invalid_request_error"},
		"/tasks/missing":  {http.StatusNotFound, "not_found"},
		"/tasks/broken":   {http.StatusInternalServerError, "internal_error"},
	} {
		w := get(path)
		require.Equal(t, want.status, w.Code, path)
		var e struct {
			Error struct {
				Type string `json:"type"`
				Code string `json:"code"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e), path)
		if want.status == http.StatusBadRequest {
			require.Equal(t, want.code, e.Error.Type, path)
		} else {
			require.Equal(t, want.code, e.Error.Code, path)
		}
		require.NotContains(t, w.Body.String(), "database on fire", "internal errors are not shown")
	}
}
