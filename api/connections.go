package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/netguard"
	"github.com/mcpidp/mcpidp/internal/store"
)

// ConnectionList is GET /v1/connections.
type ConnectionList struct {
	Object string               `json:"object"`
	Data   []mcpauth.Connection `json:"data"`
}

// ConnectionsQuery is GET /v1/connections?user=….
type ConnectionsQuery struct {
	Tenant string
	User   string
}

func (r *ConnectionsQuery) bind(c *gin.Context) error {
	r.Tenant, r.User = tenantOf(c), c.Query("user")
	return nil
}

// ListConnections returns a user's MCP logins.
func (a *API) ListConnections(ctx context.Context, r *ConnectionsQuery) (*ConnectionList, error) {
	if r.User == "" {
		return nil, missing("user")
	}
	conns, err := a.cfg.OAuth.ListConnections(ctx, r.Tenant, r.User)
	if err != nil {
		return nil, err
	}
	if conns == nil {
		conns = []mcpauth.Connection{}
	}
	return &ConnectionList{Object: "list", Data: conns}, nil
}

// ConnectRequest is POST /v1/connections: the tenant and the raw body,
// which Connect parses and checks.
type ConnectRequest struct {
	Tenant string
	Body   []byte
}

func (r *ConnectRequest) bind(c *gin.Context) error {
	r.Tenant = tenantOf(c)
	var err error
	r.Body, err = readBody(c)
	return err
}

// connectBody is the JSON body of POST /v1/connections.
type connectBody struct {
	User      string   `json:"user"`
	ServerURL string   `json:"server_url"`
	URL       string   `json:"url"`
	Scopes    []string `json:"scopes"`
}

// ConnectResponse carries the login link for the user.
type ConnectResponse struct {
	Object           string    `json:"object"`
	ServerURL        string    `json:"server_url"`
	AuthorizationURL string    `json:"authorization_url"`
	ExpiresAt        time.Time `json:"expires_at"`
}

// Connect starts a login ahead of time, or a re-scope of an existing
// connection (Scopes replace the requested ones; granted ones are kept by
// the authorization server's consent).
func (a *API) Connect(ctx context.Context, r *ConnectRequest) (*ConnectResponse, error) {
	if _, err := parseObject(r.Body); err != nil {
		return nil, err
	}
	tenant := r.Tenant
	var req connectBody
	if err := json.Unmarshal(r.Body, &req); err != nil {
		return nil, invalid("", "request body does not match {\"user\",\"server_url\",\"scopes\"}: "+err.Error())
	}
	if req.User == "" {
		return nil, missing("user")
	}
	if len(req.User) > 256 {
		return nil, invalid("user", "user is longer than 256 characters")
	}
	if err := chatreq.CheckText("user", req.User); err != nil {
		return nil, err
	}
	for _, s := range req.Scopes {
		if err := chatreq.CheckText("scopes", s); err != nil {
			return nil, err
		}
	}
	if req.ServerURL == "" {
		req.ServerURL = req.URL
	}
	if req.ServerURL == "" {
		return nil, missing("server_url")
	}
	if _, err := netguard.ValidateURL(req.ServerURL); err != nil {
		return nil, invalid("server_url", "server_url: "+err.Error())
	}
	if len(req.Scopes) > 64 {
		return nil, invalid("scopes", "at most 64 scopes")
	}
	login, err := a.cfg.OAuth.BeginLogin(ctx, mcpauth.LoginParams{Tenant: tenant, User: req.User, ServerURL: req.ServerURL, Scopes: req.Scopes})
	if err != nil {
		if errors.Is(err, mcpauth.ErrDiscovery) {
			return nil, &Error{Status: http.StatusBadGateway, Type: "upstream_error", Code: "oauth_discovery_failed", Param: "server_url",
				Message: "cannot start a login with this server: " + err.Error()}
		}
		return nil, err
	}
	return &ConnectResponse{Object: "connection.authorization", ServerURL: login.ServerURL, AuthorizationURL: login.AuthorizationURL, ExpiresAt: login.ExpiresAt}, nil
}

// ConnectionRef names one of the tenant's connections by the route's :id.
type ConnectionRef struct {
	Tenant string
	ID     string
}

func (r *ConnectionRef) bind(c *gin.Context) error {
	r.Tenant, r.ID = tenantOf(c), c.Param("id")
	return nil
}

// Disconnect revokes a connection at its authorization server (when it
// offers revocation) and deletes its tokens.
func (a *API) Disconnect(ctx context.Context, r *ConnectionRef) (*Deleted, error) {
	if err := a.cfg.OAuth.Revoke(ctx, r.Tenant, r.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("connection " + strconv.Quote(r.ID))
		}
		return nil, err
	}
	return &Deleted{ID: r.ID, Object: "connection.deleted", Deleted: true}, nil
}
