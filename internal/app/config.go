package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mcpidp/mcpidp/internal/telemetry"
)

// Config is everything mcpidp reads from its environment.
type Config struct {
	Listen               string
	PublicURL            string
	DatabaseURL          string
	EncryptionKey        string
	AllowPrivateNetworks bool
	APIKeys              map[string]string // key → tenant
	WebhookSecret        string
	WebhookURL           string
	UpstreamBaseURL      string
	UpstreamAPIKey       string
	// UpstreamResponses is "off" or "on": whether POST /v1/responses
	// without MCP tools goes to the upstream's own Responses API.
	UpstreamResponses    string
	Workers              int
	WebhookWorkers       int
	WebhookPerHost       int
	TaskRetention        time.Duration
	JobTimeout           time.Duration
	RescueStuckJobsAfter time.Duration
	CleanupInterval      time.Duration
	MaxBodyBytes         int64
	OAuthClients         string
	AuthorizationTimeout time.Duration
	ModelRetryFor        time.Duration // retrying a model failing with transient errors
	// GCPercent is the Go garbage collector's target (GOGC) that the
	// server commands set, unless GOGC itself is set; see TuneGC.
	GCPercent       int
	ElicitationHold time.Duration // how long a held tools/call waits for a form's answer
	APIKeyCacheTTL  time.Duration // how long a valid API key is trusted without a query; 0 = off
	AdminKey        string
	LogLevel        slog.Level
	LogFormat       string

	// MaxToolResultBytes, MaxToolsListBytes and MaxModelResponseBytes bound what mcpidp keeps of
	// an MCP server's or the model's answer (see mcpclient.Limits and llm.Config).
	MaxToolResultBytes    int64
	MaxToolsListBytes     int64
	MaxModelResponseBytes int64

	// ShutdownTimeout is how long a stopping process lets requests in
	// flight (chat streams) and running task segments finish; then they are
	// cut, and the segments resume in another process.
	ShutdownTimeout time.Duration
	// OTLPEndpoint is the URL traces are POSTed to (OTLP over HTTP); empty:
	// tracing is off.
	OTLPEndpoint string
}

// envVar documents one environment variable; the list is what --help shows.
type envVar struct {
	Name, Default, Help string
}

var envVars = []envVar{
	{"MCPIDP_LISTEN", ":8080", "address the HTTP server listens on"},
	{"MCPIDP_PUBLIC_URL", "http://localhost:<port>", "external base URL used in result and OAuth callback URLs"},
	{"MCPIDP_DATABASE_URL", "(unset: ./mcpidp.db)", "postgres://… for PostgreSQL, sqlite:PATH or unset for embedded SQLite"},
	{"MCPIDP_ENCRYPTION_KEY", "(SQLite: generated into <db>.key)", "base64 32-byte key, or id1:key1,id2:key2 for rotation; required with PostgreSQL"},
	{"MCPIDP_ALLOW_PRIVATE_NETWORKS", "false", "let caller-supplied URLs reach loopback/private/link-local addresses"},
	{"MCPIDP_API_KEYS", "", "tenant:key,tenant2:key2 — API keys defined by environment"},
	{"MCPIDP_WEBHOOK_SECRET", "", "whsec_… signing secret for tenants defined by MCPIDP_API_KEYS"},
	{"MCPIDP_WEBHOOK_URL", "", "default webhook URL of the tenants defined by MCPIDP_API_KEYS (connection events; tasks without their own)"},
	{"MCPIDP_UPSTREAM_BASE_URL", "$OPENAI_BASE_URL or https://api.openai.com/v1", "OpenAI-compatible model API"},
	{"MCPIDP_UPSTREAM_API_KEY", "$OPENAI_API_KEY", "key for the upstream model API"},
	{"MCPIDP_UPSTREAM_RESPONSES", "off", "on: POST /v1/responses without MCP tools (and not background) goes to the upstream's own /responses untouched; off: every request is translated to Chat Completions"},
	{"MCPIDP_WORKERS", "20", "task segments one worker process runs at once"},
	{"MCPIDP_WEBHOOK_WORKERS", "20", "webhook and callback deliveries one worker process runs at once (their own queue: they never hold task workers)"},
	{"MCPIDP_WEBHOOK_PER_HOST", "4", "deliveries one worker process sends to the same receiver (host:port) at once; more wait their turn"},
	{"MCPIDP_TASK_RETENTION", "24h", "how long store:false tasks are kept after they end"},
	{"MCPIDP_JOB_TIMEOUT", "15m", "longest a task segment may run"},
	{"MCPIDP_RESCUE_STUCK_JOBS_AFTER", "16m", "when a segment whose worker died is run again (must exceed MCPIDP_JOB_TIMEOUT)"},
	{"MCPIDP_CLEANUP_INTERVAL", "1m", "how often expired tasks are deleted"},
	{"MCPIDP_OAUTH_CLIENTS", "", `pre-registered OAuth clients, JSON: [{"issuer","client_id","client_secret","token_endpoint_auth_method","scopes"}]`},
	{"MCPIDP_AUTHORIZATION_TIMEOUT", "24h", "how long a login link works (and a task waits for its login)"},
	{"MCPIDP_ELICITATION_HOLD", "10m", "how long a task holds an MCP call open for its user's answer to a form (elicitation) before declining; bounded by MCPIDP_JOB_TIMEOUT"},
	{"MCPIDP_MODEL_RETRY_FOR", "30m", "how long a task retries a model failing with 429, 5xx, timeouts or connection errors, from the first failure (then model_error)"},
	{"MCPIDP_SHUTDOWN_TIMEOUT", "20s", "on SIGTERM/SIGINT: how long requests in flight (chat streams) and running task segments may finish; then they are cut and the segments resume in another process"},
	{"MCPIDP_API_KEY_CACHE_TTL", "5s", "how long a valid API key is trusted without asking the database again (a deleted key works at most this long); 0 turns it off"},
	{"MCPIDP_MAX_BODY_BYTES", "4194304", "largest request body accepted"},
	{"MCPIDP_MAX_TOOL_RESULT_BYTES", "1048576", "bytes of a tool result kept; long values past it are cut with a \"…[truncated\" marker"},
	{"MCPIDP_MAX_TOOLS_LIST_BYTES", "1048576", "largest tool list of one MCP server (all pages); a larger one is an error"},
	{"MCPIDP_MAX_MODEL_RESPONSE_BYTES", "4194304", "largest model answer (streamed: its text and tool calls); a larger one fails with model_error"},
	{"MCPIDP_ADMIN_KEY", "", "password (HTTP Basic) of the River UI at /admin/riverui/; unset disables it"},
	{"OTEL_EXPORTER_OTLP_ENDPOINT", "", "OTLP/HTTP collector (e.g. http://localhost:4318): turns on OpenTelemetry traces; the other OTEL_* variables apply. Unset: off"},
	{"MCPIDP_GC_PERCENT", "400", "the Go garbage collector's target (as GOGC: the heap may grow this many percent over what is live before a collection); ignored when GOGC is set. Set GOMEMLIMIT to cap memory"},
	{"MCPIDP_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"MCPIDP_LOG_FORMAT", "text", "text or json"},
}

// DefaultGCPercent is MCPIDP_GC_PERCENT's default; see TuneGC.
const DefaultGCPercent = 400

// LoadConfig reads the environment through getenv.
func LoadConfig(getenv func(string) string) (*Config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	var errs []error
	dur := func(name, def string) time.Duration {
		d, err := time.ParseDuration(get(name, def))
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be a positive duration like 30s or 24h, got %q", name, get(name, def)))
		}
		return d
	}
	c := &Config{
		Listen:               get("MCPIDP_LISTEN", ":8080"),
		PublicURL:            strings.TrimRight(get("MCPIDP_PUBLIC_URL", ""), "/"),
		DatabaseURL:          get("MCPIDP_DATABASE_URL", ""),
		EncryptionKey:        get("MCPIDP_ENCRYPTION_KEY", ""),
		WebhookSecret:        get("MCPIDP_WEBHOOK_SECRET", ""),
		WebhookURL:           get("MCPIDP_WEBHOOK_URL", ""),
		UpstreamBaseURL:      get("MCPIDP_UPSTREAM_BASE_URL", get("OPENAI_BASE_URL", "https://api.openai.com/v1")),
		UpstreamAPIKey:       get("MCPIDP_UPSTREAM_API_KEY", getenv("OPENAI_API_KEY")),
		UpstreamResponses:    get("MCPIDP_UPSTREAM_RESPONSES", "off"),
		TaskRetention:        dur("MCPIDP_TASK_RETENTION", "24h"),
		JobTimeout:           dur("MCPIDP_JOB_TIMEOUT", "15m"),
		CleanupInterval:      dur("MCPIDP_CLEANUP_INTERVAL", "1m"),
		OAuthClients:         get("MCPIDP_OAUTH_CLIENTS", ""),
		AuthorizationTimeout: dur("MCPIDP_AUTHORIZATION_TIMEOUT", "24h"),
		ModelRetryFor:        dur("MCPIDP_MODEL_RETRY_FOR", "30m"),
		ShutdownTimeout:      dur("MCPIDP_SHUTDOWN_TIMEOUT", "20s"),
		ElicitationHold:      dur("MCPIDP_ELICITATION_HOLD", "10m"),
		LogFormat:            get("MCPIDP_LOG_FORMAT", "text"),
		AdminKey:             get("MCPIDP_ADMIN_KEY", ""),
		APIKeys:              map[string]string{},
	}
	// Tracing follows the standard OpenTelemetry variables.
	c.OTLPEndpoint = telemetry.TracesURL(get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""), get("OTEL_EXPORTER_OTLP_ENDPOINT", ""))
	if strings.EqualFold(get("OTEL_SDK_DISABLED", ""), "true") || strings.EqualFold(get("OTEL_TRACES_EXPORTER", ""), "none") {
		c.OTLPEndpoint = ""
	}
	c.RescueStuckJobsAfter = dur("MCPIDP_RESCUE_STUCK_JOBS_AFTER", (c.JobTimeout + time.Minute).String())
	if c.RescueStuckJobsAfter < c.JobTimeout {
		errs = append(errs, fmt.Errorf("MCPIDP_RESCUE_STUCK_JOBS_AFTER (%s) must be at least MCPIDP_JOB_TIMEOUT (%s)", c.RescueStuckJobsAfter, c.JobTimeout))
	}
	if c.UpstreamResponses != "off" && c.UpstreamResponses != "on" {
		errs = append(errs, fmt.Errorf("MCPIDP_UPSTREAM_RESPONSES must be on or off, got %q", c.UpstreamResponses))
	}
	var err error
	if c.APIKeyCacheTTL, err = time.ParseDuration(get("MCPIDP_API_KEY_CACHE_TTL", "5s")); err != nil || c.APIKeyCacheTTL < 0 || c.APIKeyCacheTTL > time.Hour {
		errs = append(errs, fmt.Errorf("MCPIDP_API_KEY_CACHE_TTL must be a duration from 0s (off) to 1h, got %q", get("MCPIDP_API_KEY_CACHE_TTL", "5s")))
	}
	if c.AllowPrivateNetworks, err = strconv.ParseBool(get("MCPIDP_ALLOW_PRIVATE_NETWORKS", "false")); err != nil {
		errs = append(errs, fmt.Errorf("MCPIDP_ALLOW_PRIVATE_NETWORKS must be true or false"))
	}
	if c.GCPercent, err = strconv.Atoi(get("MCPIDP_GC_PERCENT", strconv.Itoa(DefaultGCPercent))); err != nil || c.GCPercent < 25 || c.GCPercent > 10000 {
		errs = append(errs, fmt.Errorf("MCPIDP_GC_PERCENT must be a whole number from 25 to 10000, got %q", get("MCPIDP_GC_PERCENT", strconv.Itoa(DefaultGCPercent))))
	}
	if c.Workers, err = strconv.Atoi(get("MCPIDP_WORKERS", "20")); err != nil || c.Workers < 1 || c.Workers > 10000 {
		errs = append(errs, fmt.Errorf("MCPIDP_WORKERS must be a whole number from 1 to 10000"))
	}
	if c.WebhookWorkers, err = strconv.Atoi(get("MCPIDP_WEBHOOK_WORKERS", "20")); err != nil || c.WebhookWorkers < 1 || c.WebhookWorkers > 10000 {
		errs = append(errs, fmt.Errorf("MCPIDP_WEBHOOK_WORKERS must be a whole number from 1 to 10000"))
	}
	if c.WebhookPerHost, err = strconv.Atoi(get("MCPIDP_WEBHOOK_PER_HOST", "4")); err != nil || c.WebhookPerHost < 1 || c.WebhookPerHost > 10000 {
		errs = append(errs, fmt.Errorf("MCPIDP_WEBHOOK_PER_HOST must be a whole number from 1 to 10000"))
	}
	if c.MaxBodyBytes, err = strconv.ParseInt(get("MCPIDP_MAX_BODY_BYTES", "4194304"), 10, 64); err != nil || c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("MCPIDP_MAX_BODY_BYTES must be a number of bytes, at least 1024"))
	}
	size := func(name, def string) int64 {
		n, err := strconv.ParseInt(get(name, def), 10, 64)
		if err != nil || n < 1024 {
			errs = append(errs, fmt.Errorf("%s must be a number of bytes, at least 1024", name))
		}
		return n
	}
	c.MaxToolResultBytes = size("MCPIDP_MAX_TOOL_RESULT_BYTES", "1048576")
	c.MaxToolsListBytes = size("MCPIDP_MAX_TOOLS_LIST_BYTES", "1048576")
	c.MaxModelResponseBytes = size("MCPIDP_MAX_MODEL_RESPONSE_BYTES", "4194304")
	if err := c.LogLevel.UnmarshalText([]byte(get("MCPIDP_LOG_LEVEL", "info"))); err != nil {
		errs = append(errs, fmt.Errorf("MCPIDP_LOG_LEVEL must be debug, info, warn or error"))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("MCPIDP_LOG_FORMAT must be text or json"))
	}
	for _, pair := range strings.Split(get("MCPIDP_API_KEYS", ""), ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		tenant, key, ok := strings.Cut(pair, ":")
		if !ok || strings.TrimSpace(tenant) == "" || len(strings.TrimSpace(key)) < 16 {
			errs = append(errs, fmt.Errorf("MCPIDP_API_KEYS: each entry must be tenant:key with a key of at least 16 characters"))
			continue
		}
		c.APIKeys[strings.TrimSpace(key)] = strings.TrimSpace(tenant)
	}
	if c.PublicURL == "" {
		_, port, err := net.SplitHostPort(c.Listen)
		if err != nil {
			errs = append(errs, fmt.Errorf("MCPIDP_LISTEN must be host:port, got %q", c.Listen))
		}
		c.PublicURL = "http://localhost:" + port
	}
	return c, errors.Join(errs...)
}
