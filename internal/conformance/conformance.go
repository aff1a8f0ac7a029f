// Package conformance runs mcpidp as the client under test of the official
// MCP conformance suite (@modelcontextprotocol/conformance, client
// scenarios): the real OAuth engine (internal/mcpauth) on a real database,
// and the real MCP sessions (internal/mcpclient), connected the way tasks
// and the chat proxy connect them (agentloop.UserConnect).
//
// Run does what mcpidp does for an end user whose task needs an MCP server:
// connect, and when the server wants authorization, make a login link, play
// the user's browser through the authorization server, take the callback,
// and retry; then list the tools and call the scenario's tool. Only the
// browser is simulated: it GETs the authorization URL without following the
// redirect and hands the redirect's query to the engine's callback, which is
// what GET /oauth/callback does.
//
// The program the suite starts is ./client; conformance_test.go runs the
// suite against it.
package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/elicitform"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
)

const (
	// tenant and user own the connection the scenario creates.
	tenant = "conformance"
	user   = "conformance-user"

	// MaxLogins is how many logins one operation (connect, list tools,
	// call a tool) may start before giving up: a server that keeps
	// answering 403 insufficient_scope must not loop the user through the
	// authorization server forever.
	MaxLogins = 3

	// publicURL is where the deployment under test would be reachable.
	// Nothing ever fetches it: the redirect to its callback is read, not
	// followed.
	publicURL = "http://mcpidp.localhost"

	// cimdClientID is the Client ID Metadata Document URL the suite
	// expects in auth/basic-cimd. The suite never fetches it there.
	cimdClientID = "https://conformance-test.local/client-metadata.json"

	httpTimeout = 10 * time.Second
)

// Config is one run of the client under test.
type Config struct {
	// ServerURL is the MCP server the scenario started. Required.
	ServerURL string
	// Scenario is MCP_CONFORMANCE_SCENARIO, such as "auth/scope-step-up".
	// Required.
	Scenario string
	// Context is MCP_CONFORMANCE_CONTEXT: scenario data such as
	// pre-registered client credentials. Optional.
	Context string
	// Dir holds the SQLite database. Required.
	Dir string
	// Logger receives progress; tokens are never logged. Defaults to
	// discarding.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	switch {
	case c.ServerURL == "":
		return errors.New("server URL is required")
	case c.Scenario == "":
		return errors.New("scenario is required (MCP_CONFORMANCE_SCENARIO)")
	case c.Dir == "":
		return errors.New("database directory is required")
	}
	return nil
}

// scenarioContext is the part of MCP_CONFORMANCE_CONTEXT we use.
type scenarioContext struct {
	Name         string `json:"name"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// toolCall is what a scenario expects the client to call.
type toolCall struct {
	name      string
	arguments string
}

// scenarioTool is the tool a scenario expects the client to call: the auth
// scenarios all offer "test-tool", and initialize expects none.
func scenarioTool(scenario string) *toolCall {
	switch scenario {
	case "initialize":
		return nil
	case "tools_call":
		return &toolCall{name: "add_numbers", arguments: `{"a":5,"b":3}`}
	case "sse-retry":
		return &toolCall{name: "test_reconnection", arguments: `{}`}
	case "elicitation-sep1034-client-defaults":
		return &toolCall{name: "test_client_elicitation_defaults", arguments: `{}`}
	}
	return &toolCall{name: "test-tool", arguments: `{}`}
}

// Run plays the client side of one scenario against cfg.ServerURL.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("invalid conformance config: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var sc scenarioContext
	if cfg.Context != "" {
		if err := json.Unmarshal([]byte(cfg.Context), &sc); err != nil {
			return fmt.Errorf("invalid MCP_CONFORMANCE_CONTEXT: %w", err)
		}
	}

	db, err := store.Open(ctx, "sqlite:"+filepath.Join(cfg.Dir, "mcpidp.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := store.New(store.Config{DB: db})
	if err != nil {
		return err
	}
	if _, err := st.MigrateUp(ctx); err != nil {
		return err
	}
	if err := st.UpsertTenant(ctx, st.DB(), tenant, ""); err != nil {
		return err
	}
	keyring, err := secretbox.Load("", db.Path)
	if err != nil {
		return err
	}

	httpClient := &http.Client{Timeout: httpTimeout}
	engineCfg := mcpauth.Config{
		Store:      st,
		Keyring:    keyring,
		HTTPClient: httpClient,
		PublicURL:  publicURL,
		ClientName: "mcpidp conformance",
		Logger:     logger,
	}
	if cfg.Scenario == "auth/basic-cimd" {
		engineCfg.ClientMetadataURL = cimdClientID
	}
	if sc.ClientID != "" {
		// An operator configures a pre-registered client per issuer; read
		// the issuer the way they would, from the server's metadata.
		issuer, err := discoverIssuer(ctx, httpClient, cfg.ServerURL)
		if err != nil {
			return fmt.Errorf("error finding the issuer for the pre-registered client: %w", err)
		}
		p := mcpauth.PreRegisteredClient{Issuer: issuer, ClientID: sc.ClientID, ClientSecret: sc.ClientSecret, TokenEndpointAuthMethod: mcpauth.AuthMethodNone}
		if sc.ClientSecret != "" {
			p.TokenEndpointAuthMethod = mcpauth.AuthMethodClientSecretBasic
		}
		engineCfg.PreRegistered = []mcpauth.PreRegisteredClient{p}
		logger.InfoContext(ctx, "using pre-registered client", slog.String("issuer", issuer), slog.String("client_id", sc.ClientID))
	}
	engine, err := mcpauth.New(engineCfg)
	if err != nil {
		return err
	}

	d := &driver{
		engine:    engine,
		serverURL: cfg.ServerURL,
		logger:    logger,
		// The production connect: the user's token on every request, and
		// one retry after a 401 when a refresh can help.
		connect: agentloop.UserConnect(engine, mcpclient.Options{
			HTTPClient:    httpClient,
			ClientName:    "mcpidp-conformance",
			ClientVersion: "1.0.0",
			Logger:        logger,
			ElicitFunc:    acceptForm(logger),
		}, tenant, user),
		// The browser stops at the first redirect: the one to our callback.
		browser: &http.Client{
			Timeout:       httpTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	return d.run(ctx, scenarioTool(cfg.Scenario))
}

// acceptForm answers a form elicitation the way a user who submits the form
// untouched does through mcpidp (POST /v1/tasks/{id}/inputs/{input_id} with
// action accept and no content): the schema's defaults, applied by the same
// elicitform code.
func acceptForm(logger *slog.Logger) mcpclient.ElicitFunc {
	return func(ctx context.Context, req mcpclient.ElicitRequest) (*mcpclient.ElicitResult, error) {
		if req.Mode != mcpclient.ElicitModeForm {
			return &mcpclient.ElicitResult{Action: mcpclient.ElicitDecline}, nil
		}
		schema, err := elicitform.Parse(req.RequestedSchema)
		if err != nil {
			return nil, err
		}
		content, err := schema.Apply(nil)
		if err != nil {
			return nil, err
		}
		logger.InfoContext(ctx, "accepted elicitation", slog.String("content", string(content)))
		return &mcpclient.ElicitResult{Action: mcpclient.ElicitAccept, Content: content}, nil
	}
}

// driver is one user's MCP session with OAuth handled the way mcpidp
// handles it.
type driver struct {
	engine    *mcpauth.Engine
	connect   agentloop.ConnectFunc
	serverURL string
	browser   *http.Client
	logger    *slog.Logger
}

func (d *driver) run(ctx context.Context, call *toolCall) error {
	sess, err := authorized(ctx, d, "connect", func() (*mcpclient.Session, error) {
		return d.connect(ctx, mcpclient.Server{URL: d.serverURL})
	})
	if err != nil {
		return err
	}
	defer sess.Close()
	d.logger.InfoContext(ctx, "connected", slog.String("transport", sess.Transport()))

	tools, err := authorized(ctx, d, "list tools", func() ([]mcpclient.Tool, error) { return sess.Tools(ctx) })
	if err != nil {
		return err
	}
	names := make([]string, 0, len(tools))
	for _, t := range tools {
		names = append(names, t.Name)
	}
	d.logger.InfoContext(ctx, "listed tools", slog.Any("tools", names))
	if call == nil {
		return nil
	}
	found := false
	for _, t := range tools {
		found = found || t.Name == call.name
	}
	if !found {
		return fmt.Errorf("the server does not offer tool %q (it offers %v)", call.name, names)
	}
	res, err := authorized(ctx, d, "call tool "+call.name, func() (*mcpclient.CallResult, error) {
		return sess.CallTool(ctx, call.name, json.RawMessage(call.arguments))
	})
	if err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("tool %q failed: %s", call.name, res.Text)
	}
	d.logger.InfoContext(ctx, "called tool", slog.String("tool", call.name), slog.String("result", res.Text))
	return nil
}

// authorized runs op, and when the server answers with an authorization
// challenge that the session's own retry (agentloop.UserConnect: a refresh
// after a 401 to a token we sent) could not answer, does what mcpidp's user
// does with the login link: logs in (again, with more scopes on 403
// insufficient_scope), after which op is retried, at most MaxLogins times.
func authorized[T any](ctx context.Context, d *driver, what string, op func() (T, error)) (T, error) {
	logins := 0
	for {
		v, err := op()
		var challenge *mcpclient.AuthChallengeError
		if !errors.As(err, &challenge) {
			if err != nil {
				err = fmt.Errorf("error in %s: %w", what, err)
			}
			return v, err
		}
		d.logger.InfoContext(ctx, "authorization challenge", slog.String("operation", what),
			slog.Int("status", challenge.StatusCode), slog.String("www_authenticate", challenge.WWWAuthenticate))
		if logins == MaxLogins {
			return v, fmt.Errorf("error in %s: still not authorized after %d logins: %w", what, logins, challenge)
		}
		logins++
		if err := d.login(ctx, challenge.WWWAuthenticate); err != nil {
			return v, fmt.Errorf("error in %s: login %d: %w", what, logins, err)
		}
	}
}

// login makes a login link for the challenge, follows it the way the
// user's browser would up to the redirect to our callback, and completes
// the callback.
func (d *driver) login(ctx context.Context, wwwAuthenticate string) error {
	l, err := d.engine.BeginLogin(ctx, mcpauth.LoginParams{
		Tenant:          tenant,
		User:            user,
		ServerURL:       d.serverURL,
		WWWAuthenticate: wwwAuthenticate,
	})
	if err != nil {
		return err
	}
	started, err := d.engine.Start(ctx, l.ID)
	if err != nil {
		return err
	}
	d.logger.InfoContext(ctx, "visiting the authorization server", slog.String("issuer", l.Issuer), slog.Any("scopes", l.Scopes))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, started.URL, nil)
	if err != nil {
		return fmt.Errorf("invalid authorization URL: %w", err)
	}
	resp, err := d.browser.Do(req)
	if err != nil {
		return fmt.Errorf("error visiting the authorization server: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return fmt.Errorf("the authorization server answered HTTP %d instead of redirecting: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("the authorization server's redirect has no usable Location: %w", err)
	}
	callback := *loc
	callback.RawQuery, callback.Fragment = "", ""
	if callback.String() != d.engine.RedirectURI() {
		return fmt.Errorf("the authorization server redirected to %s, not to our callback %s", callback.String(), d.engine.RedirectURI())
	}
	// The browser comes back with the cookie that binds the login to it.
	res, err := d.engine.Callback(ctx, loc.Query(), []*http.Cookie{started.Cookie})
	if err != nil {
		return err
	}
	d.logger.InfoContext(ctx, "authorized", slog.String("connection", res.ConnectionID), slog.Any("scopes", res.Scopes))
	return nil
}

// discoverIssuer finds the authorization server of an MCP server from its
// 401 challenge and protected-resource metadata (RFC 9728).
func discoverIssuer(ctx context.Context, client *http.Client, serverURL string) (string, error) {
	body := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpidp-conformance","version":"1.0.0"}}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, serverURL, strings.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("invalid server URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("error probing %s: %w", serverURL, err)
	}
	resp.Body.Close()
	metadataURL := mcpauth.ParseChallenge(strings.Join(resp.Header.Values("WWW-Authenticate"), ", ")).ResourceMetadata
	if metadataURL == "" {
		u, err := url.Parse(serverURL)
		if err != nil {
			return "", fmt.Errorf("invalid server URL: %w", err)
		}
		metadataURL = u.Scheme + "://" + u.Host + "/.well-known/oauth-protected-resource" + strings.TrimSuffix(u.Path, "/")
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, metadataURL, nil)
	if err != nil {
		return "", fmt.Errorf("invalid resource metadata URL: %w", err)
	}
	resp, err = client.Do(req)
	if err != nil {
		return "", fmt.Errorf("error fetching %s: %w", metadataURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s answered HTTP %d", metadataURL, resp.StatusCode)
	}
	var prm struct {
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&prm); err != nil {
		return "", fmt.Errorf("error decoding %s: %w", metadataURL, err)
	}
	if len(prm.AuthorizationServers) == 0 {
		return "", fmt.Errorf("%s lists no authorization_servers", metadataURL)
	}
	return prm.AuthorizationServers[0], nil
}
