// Package mcpproxy is mcpidp's "fetch proxy": OpenAI chat completions in
// which "tools" may name remote MCP servers,
//
//	{"type": "mcp", "url": "https://mcp.example.com/mcp", "allowed_tools": ["search"], "headers": {…}}
//
// that are listed, offered to the model as function tools, called, and
// shown in the answer as markdown, on behalf of the request's "user", with
// a login link in the answer when that user has not logged in to a server
// yet. The request may also carry "max_steps", "stop_when" and
// "mcp_output" ("markdown" or "text"); every other field reaches the
// upstream model byte for byte. A request without MCP tools is passed to
// the upstream and its answer back unchanged.
//
// mcpidp's server answers such requests at POST /v1/chat/completions. New
// gives a Go program the same engine as an http.RoundTripper, so that an
// OpenAI client gets the behaviour in-process, with no mcpidp server:
//
//	proxy, err := mcpproxy.New(ctx, mcpproxy.Options{ListenAddr: "127.0.0.1:8976"})
//	…
//	defer proxy.Close()
//	client := openai.NewClient(option.WithHTTPClient(&http.Client{Transport: proxy}))
//
// In-process, each user's MCP tokens are kept in an embedded SQLite file
// (sealed with a key kept in a file beside it) unless Options.DatabaseURL
// names another database. With Options.ServerURL set, the proxy instead
// forwards every request to a remote mcpidp server, which keeps the tokens.
//
// # Where login links land
//
// A login link is Options.PublicURL + "/oauth/start/…"; the authorization
// server sends the browser back to PublicURL + "/oauth/callback". Those
// paths (and "/oauth/client-metadata.json") are served by Proxy.Handler.
// Either mount it on a server of the program's own at PublicURL, or set
// Options.ListenAddr and the proxy serves it there itself (PublicURL then
// defaults to http://<ListenAddr>), which suits command-line tools and
// desktop programs whose user's browser runs on the same machine.
package mcpproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mcpidp/mcpidp/internal/bearer"
	"github.com/mcpidp/mcpidp/internal/chat"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/loginpage"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/netguard"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
)

// Defaults for Options.
const (
	DefaultUpstreamBaseURL = "https://api.openai.com/v1"
	DefaultDatabaseURL     = "sqlite:mcpproxy.db"
	DefaultTenant          = "default"
)

// Options configures a Proxy.
type Options struct {
	// ServerURL, when set, is a remote mcpidp server's API root
	// (https://mcpidp.example.com/v1): every request is forwarded there with
	// APIKey, and that server keeps the tokens and serves the logins. All
	// other options but UpstreamAPIKey and HTTPClient are then unused.
	ServerURL string
	// APIKey is the mcpidp API key sent to ServerURL.
	APIKey string

	// UpstreamBaseURL is the OpenAI-compatible API the model runs on.
	// Default DefaultUpstreamBaseURL. The OpenAI client's own base URL is
	// not used: only the part of its request path after "/v1" is.
	UpstreamBaseURL string
	// UpstreamAPIKey is the upstream's API key. When empty, the key the
	// OpenAI client sends (its Authorization header) is used. With
	// ServerURL it is sent as X-Upstream-Authorization.
	UpstreamAPIKey string
	// HTTPClient calls the upstream (or ServerURL). Default: a client with
	// connect and TLS timeouts and no overall timeout.
	HTTPClient *http.Client

	// DatabaseURL is where tokens are kept: "sqlite:PATH" (default
	// DefaultDatabaseURL) or "postgres://…" (then EncryptionKey is
	// required). Migrations are applied by New.
	DatabaseURL string
	// EncryptionKey seals tokens at rest (base64 32-byte key, or
	// "id1:key1,id2:key2" for rotation). For SQLite it defaults to a key
	// generated beside the database file, its extension replaced by ".key"
	// (mode 0600), by the same rule as the mcpidp server.
	EncryptionKey string
	// Tenant namespaces the users of this program. Default DefaultTenant.
	Tenant string
	// User is the end user of requests that send no "user". Empty means
	// requests with MCP tools must name one.
	User string

	// PublicURL is where Handler is reachable by the user's browser; login
	// links and the OAuth redirect URI are built from it. Required unless
	// ListenAddr is set.
	PublicURL string
	// ListenAddr, when set, makes New serve Handler on this address until
	// Close ("127.0.0.1:0" picks a free port).
	ListenAddr string
	// AllowPrivateNetworks lets MCP servers and OAuth endpoints be on
	// loopback and private networks. Off by default: MCP server URLs come
	// from requests.
	AllowPrivateNetworks bool
	// Limits bound one request.
	Limits Limits
	// Logger receives failures (never keys, tokens or bodies). Default:
	// discard.
	Logger *slog.Logger
}

// Limits bound what one chat request may ask for. Zero fields take the
// defaults noted.
type Limits struct {
	MaxMessages     int // messages, default 1000
	MaxServers      int // MCP servers, default 20
	MaxAllowedTools int // "allowed_tools" per server, default 256
	MaxHeaders      int // "headers" per server, default 32
	MaxSteps        int // "max_steps" (model turns), default 100; a request naming none gets 10
	MaxStopWhen     int // "stop_when" conditions, default 16
	MaxUserLength   int // characters of "user", default 256
}

// engineLimits is l for the engine, which applies the defaults.
func (l Limits) engineLimits() chat.Limits {
	return chat.Limits{
		MaxMessages: l.MaxMessages, MaxServers: l.MaxServers, MaxAllowedTools: l.MaxAllowedTools, MaxHeaders: l.MaxHeaders,
		MaxSteps: l.MaxSteps, MaxStopWhen: l.MaxStopWhen, MaxUserLength: l.MaxUserLength,
	}
}

// Proxy is an http.RoundTripper that answers OpenAI API requests with MCP
// tools in-process (or through a remote mcpidp server). It is safe for
// concurrent use; Close releases it.
type Proxy struct {
	opts      Options
	remote    *url.URL
	transport http.RoundTripper
	engine    *chat.Engine
	oauth     *mcpauth.Engine
	logins    http.Handler // serves the login paths; nil in remote mode
	db        *store.DB
	publicURL *url.URL
	server    *http.Server
	serveDone chan struct{}
	closeOnce sync.Once
}

// New returns a Proxy for opts: in remote mode at once, otherwise after
// opening the token database, applying its migrations and, with
// ListenAddr, starting the login server.
func New(ctx context.Context, opts Options) (*Proxy, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{opts: opts}
	if opts.HTTPClient != nil && opts.HTTPClient.Transport != nil {
		p.transport = opts.HTTPClient.Transport
	} else {
		p.transport = http.DefaultTransport
	}
	if opts.ServerURL != "" {
		u, err := url.Parse(strings.TrimRight(opts.ServerURL, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("mcpproxy: invalid server URL %q: want http(s)://host/v1", opts.ServerURL)
		}
		if opts.APIKey == "" {
			return nil, errors.New("mcpproxy: an API key for the mcpidp server is required")
		}
		p.remote = u
		return p, nil
	}
	if err := p.openLocal(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Proxy) openLocal(ctx context.Context) error {
	opts := &p.opts
	if opts.UpstreamBaseURL == "" {
		opts.UpstreamBaseURL = DefaultUpstreamBaseURL
	}
	if opts.DatabaseURL == "" {
		opts.DatabaseURL = DefaultDatabaseURL
	}
	if opts.Tenant == "" {
		opts.Tenant = DefaultTenant
	}
	if opts.PublicURL == "" && opts.ListenAddr == "" {
		return errors.New("mcpproxy: PublicURL or ListenAddr is required: login links must land somewhere")
	}
	model, err := llm.New(llm.Config{BaseURL: opts.UpstreamBaseURL, APIKey: opts.UpstreamAPIKey, HTTPClient: opts.HTTPClient, Logger: opts.Logger})
	if err != nil {
		return fmt.Errorf("mcpproxy: %w", err)
	}

	var ln net.Listener
	if opts.ListenAddr != "" {
		if ln, err = net.Listen("tcp", opts.ListenAddr); err != nil {
			return fmt.Errorf("mcpproxy: error listening for logins: %w", err)
		}
		if opts.PublicURL == "" {
			opts.PublicURL = "http://" + ln.Addr().String()
		}
	}
	closeLn := func() {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if p.publicURL, err = url.Parse(strings.TrimRight(opts.PublicURL, "/")); err != nil {
		closeLn()
		return fmt.Errorf("mcpproxy: invalid public URL %q: %w", opts.PublicURL, err)
	}

	if p.db, err = store.Open(ctx, opts.DatabaseURL); err != nil {
		closeLn()
		return fmt.Errorf("mcpproxy: %w", err)
	}
	st, err := store.New(store.Config{DB: p.db})
	if err != nil {
		closeLn()
		return err
	}
	if _, err := st.MigrateUp(ctx); err != nil {
		closeLn()
		return fmt.Errorf("mcpproxy: %w", err)
	}
	if opts.EncryptionKey == "" && p.db.Path != "" {
		if err := adoptLegacyKeyFile(p.db.Path); err != nil {
			closeLn()
			return fmt.Errorf("mcpproxy: %w", err)
		}
	}
	keyring, err := secretbox.Load(opts.EncryptionKey, p.db.Path)
	if err != nil {
		closeLn()
		return fmt.Errorf("mcpproxy: %w", err)
	}
	if err := st.UpsertTenant(ctx, st.DB(), opts.Tenant, ""); err != nil {
		closeLn()
		return fmt.Errorf("mcpproxy: %w", err)
	}

	guard := netguard.New(netguard.Config{AllowPrivateNetworks: opts.AllowPrivateNetworks})
	p.oauth, err = mcpauth.New(mcpauth.Config{
		Store: st, Keyring: keyring, HTTPClient: guard.Client(30 * time.Second), PublicURL: p.publicURL.String(),
		ClientName: "mcpidp", Logger: opts.Logger,
	})
	if err != nil {
		closeLn()
		return err
	}
	if _, err := p.oauth.Cleanup(ctx); err != nil {
		opts.Logger.WarnContext(ctx, "mcpproxy: error deleting expired logins", slog.String("error", err.Error()))
	}
	p.logins, err = loginpage.NewHandler(loginpage.HandlerConfig{OAuth: p.oauth, Logger: opts.Logger, Prefix: p.publicURL.Path})
	if err != nil {
		closeLn()
		return fmt.Errorf("mcpproxy: %w", err)
	}
	p.engine, err = chat.NewEngine(chat.EngineConfig{Model: model, OAuth: p.oauth, HTTPClient: guard.Client(0), Limits: opts.Limits.engineLimits(), Logger: opts.Logger,
		Keyring: keyring})
	if err != nil {
		closeLn()
		return err
	}
	if ln != nil {
		p.server = &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)}
		p.serveDone = make(chan struct{})
		go func() {
			defer close(p.serveDone)
			_ = p.server.Serve(ln)
		}()
	}
	return nil
}

// PublicURL is where login links point (empty in remote mode).
func (p *Proxy) PublicURL() string {
	if p.publicURL == nil {
		return ""
	}
	return p.publicURL.String()
}

// Close stops the login server and closes the token database.
func (p *Proxy) Close() error {
	var err error
	p.closeOnce.Do(func() {
		if p.server != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = p.server.Shutdown(ctx)
			<-p.serveDone
		}
		if p.db != nil {
			err = p.db.Close()
		}
	})
	return err
}

// RoundTrip implements http.RoundTripper. POST …/chat/completions is
// answered by the engine; any other request (GET …/models, embeddings…)
// goes to the upstream unchanged. The response body streams; closing it
// early stops the upstream call and the tool loop.
func (p *Proxy) RoundTrip(req *http.Request) (*http.Response, error) {
	if p.remote != nil {
		return p.roundTripRemote(req)
	}
	path := relativePath(req.URL.Path)
	if req.URL.RawQuery != "" {
		path += "?" + req.URL.RawQuery
	}
	key := ""
	if p.opts.UpstreamAPIKey == "" {
		key = bearer.Key(req.Header.Get("Authorization"))
	}
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("mcpproxy: error reading request body: %w", err)
		}
	}
	serve := func(ctx context.Context, w http.ResponseWriter) {
		if req.Method == http.MethodPost && strings.TrimRight(path, "/") == "/chat/completions" {
			p.engine.ServeChat(ctx, w, chat.Call{Tenant: p.opts.Tenant, Body: body, UpstreamKey: key, DefaultUser: p.opts.User})
			return
		}
		header := http.Header{}
		for _, name := range []string{"Content-Type", "Accept"} {
			if v := req.Header.Get(name); v != "" {
				header.Set(name, v)
			}
		}
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		p.engine.Forward(ctx, w, req.Method, path, r, key, header)
	}
	return servePipe(req, serve)
}

func (p *Proxy) roundTripRemote(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	u := *p.remote
	u.Path = p.remote.Path + relativePath(req.URL.Path)
	u.RawPath = ""
	u.RawQuery = req.URL.RawQuery
	out.URL, out.Host = &u, ""
	out.Header.Set("Authorization", "Bearer "+p.opts.APIKey)
	out.Header.Del("X-Upstream-Authorization")
	if p.opts.UpstreamAPIKey != "" {
		out.Header.Set("X-Upstream-Authorization", "Bearer "+p.opts.UpstreamAPIKey)
	}
	return p.transport.RoundTrip(out)
}

// relativePath is the request path after the API root: the part after the
// last "/v1" segment, or the whole path when there is none.
func relativePath(p string) string {
	if i := strings.LastIndex(p, "/v1/"); i >= 0 {
		return p[i+3:]
	}
	if strings.HasSuffix(p, "/v1") {
		return "/"
	}
	return p
}

// Handler serves the login paths under PublicURL's path: the login links
// (/oauth/start/…), the OAuth redirect (/oauth/callback) and the client
// metadata document (/oauth/client-metadata.json). In remote mode it
// answers 404: the server serves them.
func (p *Proxy) Handler() http.Handler {
	if p.oauth == nil {
		return http.NotFoundHandler()
	}
	return p.logins
}

// adoptLegacyKeyFile moves the key file earlier versions of mcpproxy kept
// ("<database>.key", e.g. mcpproxy.db.key) to where the one key-file rule
// keeps it (secretbox.KeyFilePath, e.g. mcpproxy.key), so that tokens
// sealed with it still open. It does nothing when the new file exists.
func adoptLegacyKeyFile(dbPath string) error {
	legacy, current := dbPath+".key", secretbox.KeyFilePath(dbPath)
	if _, err := os.Stat(current); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(legacy); err != nil {
		return nil
	}
	if err := os.Rename(legacy, current); err != nil {
		return fmt.Errorf("error moving key file %s to %s: %w", legacy, current, err)
	}
	return nil
}
