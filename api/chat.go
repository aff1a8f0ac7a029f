package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/mcpidp/mcpidp/internal/bearer"
	"github.com/mcpidp/mcpidp/internal/chat"
)

// ChatCompletions serves POST /v1/chat/completions for the
// tenant: the chat engine writes the answer, JSON or server-sent events, on
// w. upstreamKey is the request's X-Upstream-Authorization, if any. The
// request's context ends when the client goes away, which stops the
// upstream call and the tool loop. Config.Chat must be set.
func (a *API) ChatCompletions(ctx context.Context, w http.ResponseWriter, tenant, upstreamKey string, body []byte) {
	a.cfg.Chat.ServeChat(ctx, w, chat.Call{Tenant: tenant, Body: body, UpstreamKey: upstreamKey})
}

// Models serves GET /v1/models by passing it to the upstream. Config.Chat
// must be set.
func (a *API) Models(ctx context.Context, w http.ResponseWriter, upstreamKey, rawQuery string) {
	path := "/models"
	if rawQuery != "" {
		path += "?" + rawQuery
	}
	a.cfg.Chat.Forward(ctx, w, http.MethodGet, path, nil, upstreamKey, nil)
}

func (a *API) handleChatCompletions(c *gin.Context) {
	if a.cfg.Chat == nil {
		a.writeError(c, notFound("route POST /v1/chat/completions"))
		return
	}
	body, err := readBody(c)
	if err != nil {
		a.writeError(c, err)
		return
	}
	a.ChatCompletions(c.Request.Context(), c.Writer, tenantOf(c), bearer.Key(c.GetHeader("X-Upstream-Authorization")), body)
}

func (a *API) handleModels(c *gin.Context) {
	if a.cfg.Chat == nil {
		a.writeError(c, notFound("route GET /v1/models"))
		return
	}
	a.Models(c.Request.Context(), c.Writer, bearer.Key(c.GetHeader("X-Upstream-Authorization")), c.Request.URL.RawQuery)
}
