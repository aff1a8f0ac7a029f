// Package api is mcpidp's HTTP face: the gin router and its handlers for
// tasks, public results and health. Handler logic lives in methods of API
// that take plain arguments and return plain values, so it is tested
// without the HTTP framework; gin stays at the edge (routes.go). The task
// routes are endpoints: one request type per route that binds itself, and
// one generic adapter, handle (endpoint.go), that binds, calls, writes the
// answer and maps errors. Task transitions are task.Service's.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/mcpidp/mcpidp/internal/bearer"
	"github.com/mcpidp/mcpidp/internal/chat"
	"github.com/mcpidp/mcpidp/internal/loginpage"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/responses"
	"github.com/mcpidp/mcpidp/internal/resultpage"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

// Config holds the API's dependencies.
type Config struct {
	Store *store.Store
	// OAuth runs MCP logins (connections, login links, callbacks).
	OAuth *mcpauth.Engine
	// Tasks performs the task transitions (create, cancel, delete).
	Tasks *task.Service
	// Chat answers POST /v1/chat/completions and GET /v1/models. Optional:
	// without it those routes answer 404.
	Chat *chat.Engine
	// Responses answers /v1/responses. Optional: without it those routes
	// answer 404.
	Responses *responses.Engine
	// PublicURL is this deployment's external base URL, without a
	// trailing slash; result URLs are built from it.
	PublicURL string
	// EnvKeys maps API keys given by MCPIDP_API_KEYS to tenant ids.
	EnvKeys map[string]string
	// ResultPollInterval is how often ?wait= re-reads a task; default 200ms.
	ResultPollInterval time.Duration
	// KeyCacheTTL is how long a valid API key is trusted without asking
	// the database again: a key deleted from the database keeps working
	// for at most this long. Zero means DefaultKeyCacheTTL; negative
	// turns the cache off.
	KeyCacheTTL time.Duration
	Limits      Limits
	// AdminKey guards Admin; empty disables it.
	AdminKey string
	// Admin serves the River UI under AdminPrefix. Optional.
	Admin http.Handler
	// Ready reports whether the service can serve (database reachable,
	// migrations current). Nil means always ready.
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
}

// API implements the endpoints.
type API struct {
	cfg     Config
	envKeys map[string]string // key hash → tenant
	metrics *metrics
	keys    *keyCache
	// logins serves the login paths (/oauth/…).
	logins http.Handler
	// pages renders the HTML result page (/r/{token}).
	pages *resultpage.Renderer
}

// AdminPrefix is where the River UI is served.
const AdminPrefix = "/admin/riverui"

// New validates cfg and returns the API.
func New(cfg Config) (*API, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("api: store is required")
	case cfg.OAuth == nil:
		return nil, errors.New("api: OAuth engine is required")
	case cfg.Tasks == nil:
		return nil, errors.New("api: task service is required")
	case cfg.PublicURL == "":
		return nil, errors.New("api: public URL is required")
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.ResultPollInterval <= 0 {
		cfg.ResultPollInterval = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.KeyCacheTTL == 0 {
		cfg.KeyCacheTTL = DefaultKeyCacheTTL
	}
	cfg.Limits.ApplyDefaults()
	logins, err := loginpage.NewHandler(loginpage.HandlerConfig{OAuth: cfg.OAuth, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	pages, err := resultpage.New(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	a := &API{cfg: cfg, envKeys: map[string]string{}, metrics: newMetrics(cfg.Store, cfg.Logger), logins: logins, pages: pages,
		keys: newKeyCache(cfg.KeyCacheTTL, time.Now)}
	for key, tenant := range cfg.EnvKeys {
		a.envKeys[store.HashKey(key)] = tenant
	}
	return a, nil
}

// Authenticate maps a bearer API key to its tenant.
func (a *API) Authenticate(ctx context.Context, authorization string) (string, error) {
	key, ok := bearer.Token(authorization)
	if !ok {
		return "", &Error{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "missing_api_key",
			Message: "missing API key: send Authorization: Bearer <key>"}
	}
	hash := store.HashKey(key)
	if tenant, ok := a.envKeys[hash]; ok {
		return tenant, nil
	}
	if tenant, ok := a.keys.get(hash); ok {
		return tenant, nil
	}
	tenant, err := a.cfg.Store.TenantForKeyHash(ctx, a.cfg.Store.Prepared(), hash)
	if errors.Is(err, store.ErrNotFound) {
		return "", &Error{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key", Message: "invalid API key"}
	}
	if err != nil {
		return "", err
	}
	a.keys.put(hash, tenant)
	return tenant, nil
}
