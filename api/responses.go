package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/mcpidp/mcpidp/internal/bearer"
	"github.com/mcpidp/mcpidp/internal/responses"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

// CreateResponse serves POST /v1/responses for the tenant: the Responses
// engine writes the answer (a response object, server-sent events, or a
// queued background response) on w. Config.Responses must be set.
func (a *API) CreateResponse(ctx context.Context, w http.ResponseWriter, tenant, upstreamKey string, body []byte) {
	a.cfg.Responses.Serve(ctx, w, responses.Call{Tenant: tenant, Body: body, UpstreamKey: upstreamKey})
}

func (a *API) handleCreateResponse(c *gin.Context) {
	if a.cfg.Responses == nil {
		a.writeError(c, notFound("route POST /v1/responses"))
		return
	}
	body, err := readBody(c)
	if err != nil {
		a.writeError(c, err)
		return
	}
	a.CreateResponse(c.Request.Context(), c.Writer, tenantOf(c), bearer.Key(c.GetHeader("X-Upstream-Authorization")), body)
}

// ResponseRef names one of the tenant's stored responses by the route's
// :id (GET, cancel, DELETE /v1/responses/{id}).
type ResponseRef struct {
	Tenant string
	ID     string
}

func (r *ResponseRef) bind(c *gin.Context) error {
	r.Tenant, r.ID = tenantOf(c), c.Param("id")
	return nil
}

// GetResponse returns a stored response; a background one as its task now
// stands.
func (a *API) GetResponse(ctx context.Context, r *ResponseRef) (*responses.Object, error) {
	if a.cfg.Responses == nil {
		return nil, notFound("route GET /v1/responses/{id}")
	}
	o, err := a.cfg.Responses.Get(ctx, r.Tenant, r.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("response " + strconv.Quote(r.ID))
	}
	return o, err
}

// CancelResponse cancels a background response that has not ended.
func (a *API) CancelResponse(ctx context.Context, r *ResponseRef) (*responses.Object, error) {
	if a.cfg.Responses == nil {
		return nil, notFound("route POST /v1/responses/{id}/cancel")
	}
	o, err := a.cfg.Responses.Cancel(ctx, r.Tenant, r.ID)
	var ended *task.NotCancelableError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, notFound("response " + strconv.Quote(r.ID))
	case errors.Is(err, responses.ErrNotBackground):
		return nil, invalid("id", "only background responses can be cancelled")
	case errors.As(err, &ended):
		return nil, &Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "response_not_cancelable",
			Message: "response " + r.ID + " has already ended"}
	}
	return o, err
}

// DeleteResponse removes a stored response (a background one's task with
// it, which stops at its next step).
func (a *API) DeleteResponse(ctx context.Context, r *ResponseRef) (*Deleted, error) {
	if a.cfg.Responses == nil {
		return nil, notFound("route DELETE /v1/responses/{id}")
	}
	err := a.cfg.Responses.Delete(ctx, r.Tenant, r.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("response " + strconv.Quote(r.ID))
	}
	if err != nil {
		return nil, err
	}
	return &Deleted{ID: r.ID, Object: "response", Deleted: true}, nil
}

// ListInputItemsRequest is GET /v1/responses/{id}/input_items.
type ListInputItemsRequest struct {
	Tenant, ID, After, Limit, Order string
}

func (r *ListInputItemsRequest) bind(c *gin.Context) error {
	r.Tenant, r.ID, r.After, r.Limit, r.Order = tenantOf(c), c.Param("id"), c.Query("after"), c.Query("limit"), c.Query("order")
	return nil
}

// ListInputItems pages through the input items a stored response's request
// sent.
func (a *API) ListInputItems(ctx context.Context, r *ListInputItemsRequest) (*responses.InputItems, error) {
	if a.cfg.Responses == nil {
		return nil, notFound("route GET /v1/responses/{id}/input_items")
	}
	limit := 20
	if r.Limit != "" {
		n, err := strconv.Atoi(r.Limit)
		if err != nil || n < 1 || n > 100 {
			return nil, invalid("limit", "limit must be a whole number from 1 to 100")
		}
		limit = n
	}
	if r.Order != "" && r.Order != "asc" && r.Order != "desc" {
		return nil, invalid("order", `order must be "asc" or "desc"`)
	}
	out, err := a.cfg.Responses.ListInputItems(ctx, r.Tenant, r.ID, r.After, limit, r.Order == "asc")
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("response " + strconv.Quote(r.ID))
	}
	return out, err
}
