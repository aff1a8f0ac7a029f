// Package app is mcpidp's composition root: it reads the configuration,
// opens the database, migrates, builds the River client, the store and the
// engines, and runs the HTTP server and workers. cmd/mcpidp only calls Run.
package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"riverqueue.com/riverui"

	"github.com/mcpidp/mcpidp/api"
	"github.com/mcpidp/mcpidp/internal/chat"
	"github.com/mcpidp/mcpidp/internal/delivery"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
	"github.com/mcpidp/mcpidp/internal/netguard"
	"github.com/mcpidp/mcpidp/internal/redact"
	"github.com/mcpidp/mcpidp/internal/responses"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
	"github.com/mcpidp/mcpidp/internal/telemetry"
	"github.com/mcpidp/mcpidp/worker"
)

// Mode says which halves of mcpidp a process runs.
type Mode int

const (
	ModeServe  Mode = iota // API and workers
	ModeAPI                // API only (inserts jobs)
	ModeWorker             // workers only
)

// Options are the dependencies that do not come from the environment.
type Options struct {
	Logger *slog.Logger
	// Now is the clock of the store (expiry, timestamps). Tests inject one.
	Now func() time.Time
	// Migrate applies pending migrations before starting.
	Migrate bool
	// WebhookBackoffFunc replaces the webhook retry backoff (tests).
	WebhookBackoffFunc func(attempt int) time.Duration
	// ModelBackoffFunc replaces the backoff between tries of a failing
	// model call that gave no Retry-After (tests).
	ModelBackoffFunc func(retry int) time.Duration
	// AllowAddrFunc lets the SSRF guard through to addresses it would
	// block, for tests that stand a loopback server in for a public one.
	AllowAddrFunc func(netip.AddrPort) bool
	// TracerProvider receives the traces (HTTP, River jobs, model and MCP
	// calls). Nil: built from the OTEL_* environment (OTLP/HTTP when
	// OTEL_EXPORTER_OTLP_ENDPOINT is set, else off). Tests inject an SDK
	// provider with an in-memory exporter.
	TracerProvider trace.TracerProvider
}

// App is a built mcpidp process.
type App struct {
	cfg     *Config
	logger  *slog.Logger
	db      *store.DB
	store   *store.Store
	keyring *secretbox.Keyring
	driver  riverdriver.Driver[*sql.Tx]
	river   *river.Client[*sql.Tx]
	// pgxRiver inserts only (no queues, never started), on the pgx pool
	// with River's pgx driver: grouped task submissions on PostgreSQL use
	// it. nil for SQLite.
	pgxRiver *river.Client[pgx.Tx]
	api      *api.API
	tasks    *task.Service
	oauth    *mcpauth.Engine
	model    *llm.Client
	admin    *riverui.Handler
	guard    *netguard.Guard
	mode     Mode
	tracing  *telemetry.Provider
}

// New builds an App: it opens the database and, with opts.Migrate, brings
// both our schema and River's up to date.
func New(ctx context.Context, cfg *Config, mode Mode, opts Options) (*App, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Libraries log the URLs they were given, and an MCP server's URL may
	// carry its key in the query: no log line shows a query or userinfo.
	logger = slog.New(redact.NewHandler(logger.Handler()))
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, logger: logger, db: db, mode: mode}
	if err := a.build(ctx, opts); err != nil {
		if a.tracing != nil {
			_ = a.tracing.Shutdown(ctx)
		}
		db.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) build(ctx context.Context, opts Options) error {
	cfg := a.cfg
	if a.db.Dialect == store.DialectSQLite && a.mode != ModeServe {
		return errors.New("the api and worker commands need PostgreSQL (MCPIDP_DATABASE_URL=postgres://…); with SQLite use serve")
	}
	var err error
	a.store, err = store.New(store.Config{DB: a.db, Now: opts.Now})
	if err != nil {
		return err
	}
	if a.keyring, err = secretbox.Load(cfg.EncryptionKey, a.db.Path); err != nil {
		return err
	}
	if a.db.Dialect == store.DialectPostgres {
		a.driver = riverdatabasesql.NewWithPgxListener(a.db.SQL, a.db.Pool)
	} else {
		a.driver = riversqlite.New(a.db.SQL)
	}
	if opts.Migrate {
		if err := a.migrateUp(ctx); err != nil {
			return err
		}
	}

	if opts.TracerProvider != nil {
		a.tracing = &telemetry.Provider{TracerProvider: opts.TracerProvider, Enabled: true}
	} else if a.tracing, err = telemetry.NewProvider(ctx, telemetry.Config{Endpoint: cfg.OTLPEndpoint}); err != nil {
		return err
	}
	// Components get a provider only when tracing is on: off costs nothing.
	var tp trace.TracerProvider
	if a.tracing.Enabled {
		tp = a.tracing.TracerProvider
	}

	guard := netguard.New(netguard.Config{AllowPrivateNetworks: cfg.AllowPrivateNetworks, AllowFunc: opts.AllowAddrFunc})
	model, err := llm.New(llm.Config{BaseURL: cfg.UpstreamBaseURL, APIKey: cfg.UpstreamAPIKey, Logger: a.logger,
		MaxResponseBytes: cfg.MaxModelResponseBytes, TracerProvider: tp})
	if err != nil {
		return fmt.Errorf("invalid upstream model configuration: %w", err)
	}
	a.guard, a.model = guard, model

	preRegistered, err := mcpauth.ParsePreRegistered(cfg.OAuthClients)
	if err != nil {
		return fmt.Errorf("invalid MCPIDP_OAUTH_CLIENTS: %w", err)
	}
	a.oauth, err = mcpauth.New(mcpauth.Config{
		Store: a.store, Keyring: a.keyring, HTTPClient: guard.Client(30 * time.Second), PublicURL: cfg.PublicURL,
		ClientName: "mcpidp", PreRegistered: preRegistered, LoginTTL: cfg.AuthorizationTimeout, Now: opts.Now, Logger: a.logger,
		RefreshFailedTxFunc: func(ctx context.Context, tx *sql.Tx, tenant, user string, c mcpauth.Connection) error {
			return a.tasks.AnnounceRefreshFailedTx(ctx, tx, tenant, user, c)
		},
		LoginCompletedTxFunc: a.resumeAfterLoginTx,
		TokenRefreshedTxFunc: a.resumeAfterRefreshTx,
	})
	if err != nil {
		return fmt.Errorf("error creating OAuth engine: %w", err)
	}

	mcpLimits := mcpclient.Limits{MaxToolResultBytes: cfg.MaxToolResultBytes, MaxToolsListBytes: cfg.MaxToolsListBytes}
	// One service for the API and the workers. The River client it
	// inserts with outside jobs (a.river) is made below, once the workers
	// that use the service are registered.
	a.tasks, err = task.NewService(task.ServiceConfig{
		Store: a.store, Keyring: a.keyring, OAuth: a.oauth, RiverFunc: func() *river.Client[*sql.Tx] { return a.river },
		PgxRiverFunc: a.pgxRiverFunc(),
		PublicURL:    cfg.PublicURL, Retention: cfg.TaskRetention, Logger: a.logger,
		// A tool call waits for approval as long as a login link lives.
		ApprovalTTL: cfg.AuthorizationTimeout,
	})
	if err != nil {
		return err
	}

	workers := river.NewWorkers()
	runner, err := worker.NewTaskRunner(worker.TaskRunnerConfig{
		Store: a.store, Keyring: a.keyring, Model: model, HTTPClient: guard.Client(0), OAuth: a.oauth,
		Tasks: a.tasks, CompleteJobTx: a.completeJobTx,
		JobTimeout: cfg.JobTimeout, Logger: a.logger,
		ModelRetryFor: cfg.ModelRetryFor, ModelBackoffFunc: opts.ModelBackoffFunc,
		MCPLimits: mcpLimits, TracerProvider: tp, ElicitationHold: cfg.ElicitationHold, URLInputTimeout: cfg.AuthorizationTimeout,
	})
	if err != nil {
		return err
	}
	river.AddWorker(workers, runner)
	cleaner, err := worker.NewCleaner(a.store, a.logger)
	if err != nil {
		return err
	}
	river.AddWorker(workers, cleaner)
	sweeper, err := worker.NewOrphanSweeper(a.store, a.tasks, a.logger)
	if err != nil {
		return err
	}
	river.AddWorker(workers, sweeper)
	river.AddWorker(workers, worker.NewOAuthMaintainer(a.oauth, a.logger))
	timeouter, err := worker.NewAuthTimeouter(a.tasks)
	if err != nil {
		return err
	}
	river.AddWorker(workers, timeouter)
	inputTimeouter, err := worker.NewInputTimeouter(a.tasks)
	if err != nil {
		return err
	}
	river.AddWorker(workers, inputTimeouter)
	rechecker, err := worker.NewLoginRechecker(a.tasks)
	if err != nil {
		return err
	}
	river.AddWorker(workers, rechecker)
	approvalTimeouter, err := worker.NewApprovalTimeouter(a.tasks)
	if err != nil {
		return err
	}
	river.AddWorker(workers, approvalTimeouter)
	deliverer, err := delivery.NewDeliverer(delivery.DelivererConfig{Store: a.store, Keyring: a.keyring, HTTPClient: guard.Client(0),
		PerHost: cfg.WebhookPerHost, BackoffFunc: opts.WebhookBackoffFunc, Logger: a.logger}) // wall clock: receivers check webhook-timestamp
	if err != nil {
		return err
	}
	river.AddWorker(workers, deliverer)

	riverCfg := &river.Config{
		Logger:               a.logger,
		Workers:              workers,
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueStuckJobsAfter,
		// Measured: 5ms cooldown gets a committed job started
		// in 3–5ms on PostgreSQL. SQLite has no listener, so it polls.
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: time.Second,
		// Stopping (ctx canceled) lets running jobs finish this long, then
		// cancels them; River makes a job canceled that way available again
		// at once, without using an attempt, so another process resumes it.
		SoftStopTimeout: cfg.ShutdownTimeout,
	}
	if a.db.Dialect == store.DialectSQLite {
		riverCfg.FetchPollInterval = 50 * time.Millisecond
	}
	if tp != nil {
		// A span per job insert and per job run; the run links back to
		// the request that inserted the job. Job args are not recorded.
		riverCfg.Middleware = append(riverCfg.Middleware, otelriver.NewMiddleware(&otelriver.MiddlewareConfig{
			TracerProvider: tp, MeterProvider: metricnoop.NewMeterProvider(),
			EnableTracePropagation: true, EnableWorkSpanJobKindSuffix: true,
		}))
	}
	if a.mode != ModeAPI {
		riverCfg.Queues = map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: cfg.Workers},
			// Deliveries wait on receivers we do not control: they get
			// workers of their own so that they can never delay tasks.
			delivery.Queue: {MaxWorkers: cfg.WebhookWorkers},
		}
		riverCfg.PeriodicJobs = []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(cfg.CleanupInterval),
				func() (river.JobArgs, *river.InsertOpts) { return worker.CleanupArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(cfg.CleanupInterval),
				func() (river.JobArgs, *river.InsertOpts) { return worker.OrphanSweepArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(time.Minute),
				func() (river.JobArgs, *river.InsertOpts) { return worker.OAuthMaintenanceArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
		}
	}
	if a.river, err = river.NewClient(a.driver, riverCfg); err != nil {
		return fmt.Errorf("error creating River client: %w", err)
	}

	if a.db.Pool != nil {
		// Same workers (kind checks) and middleware (insert spans) as
		// a.river; nothing else applies to a client that only inserts,
		// but for the cooldown of its insert notifications: River sends
		// one per FetchCooldown at most, from inside the transaction, so
		// a group that commits after the group that notified, without a
		// notification of its own, waits for the workers' next poll (up
		// to FetchPollInterval). Groups are written one at a time, each
		// already one notification for many tasks: each sends its own.
		insertCfg := &river.Config{Logger: a.logger, Workers: workers, FetchCooldown: river.FetchCooldownMin, Middleware: riverCfg.Middleware}
		if a.pgxRiver, err = river.NewClient(riverpgxv5.New(a.db.Pool), insertCfg); err != nil {
			return fmt.Errorf("error creating River insert client: %w", err)
		}
	}

	chatEngine, err := chat.NewEngine(chat.EngineConfig{Model: model, OAuth: a.oauth, HTTPClient: guard.Client(0), Logger: a.logger,
		MCPLimits: mcpLimits, Keyring: a.keyring, ApprovalTTL: cfg.AuthorizationTimeout, TracerProvider: tp})
	if err != nil {
		return err
	}
	responsesEngine, err := responses.New(responses.Config{Model: model, Chat: chatEngine, OAuth: a.oauth, HTTPClient: guard.Client(0),
		Store: a.store, Tasks: a.tasks, MCPLimits: mcpLimits, Upstream: cfg.UpstreamResponses, Logger: a.logger})
	if err != nil {
		return err
	}
	var admin *riverui.Handler
	if cfg.AdminKey != "" && a.mode != ModeWorker {
		if len(cfg.AdminKey) < 16 {
			return errors.New("MCPIDP_ADMIN_KEY must be at least 16 characters")
		}
		admin, err = riverui.NewHandler(&riverui.HandlerOpts{
			Endpoints: riverui.NewEndpoints(a.river, nil),
			Logger:    a.logger,
			Prefix:    api.AdminPrefix,
		})
		if err != nil {
			return fmt.Errorf("error creating River UI: %w", err)
		}
		a.admin = admin
	}
	a.api, err = api.New(api.Config{
		Store: a.store, OAuth: a.oauth, Tasks: a.tasks, PublicURL: cfg.PublicURL, EnvKeys: cfg.APIKeys, Chat: chatEngine,
		Responses: responsesEngine,
		AdminKey:  cfg.AdminKey, Admin: adminHandler(admin),
		Limits: api.Limits{MaxBodyBytes: cfg.MaxBodyBytes}, Ready: a.ready, Logger: a.logger,
		KeyCacheTTL: keyCacheTTL(cfg.APIKeyCacheTTL),
	})
	return err
}

// pgxRiverFunc is the task service's PgxRiverFunc: nil under SQLite, else
// a.pgxRiver once build has made it.
func (a *App) pgxRiverFunc() func() *river.Client[pgx.Tx] {
	if a.db.Pool == nil {
		return nil
	}
	return func() *river.Client[pgx.Tx] { return a.pgxRiver }
}

// completeJobTx completes a task job in the caller's transaction; only here
// is the River driver's type known.
func (a *App) completeJobTx(ctx context.Context, tx *sql.Tx, job *river.Job[task.RunArgs]) error {
	var err error
	if a.db.Dialect == store.DialectPostgres {
		_, err = river.JobCompleteTx[*riverdatabasesql.Driver](ctx, tx, job)
	} else {
		_, err = river.JobCompleteTx[*riversqlite.Driver](ctx, tx, job)
	}
	return err
}

// resumeAfterLoginTx continues, in the callback's transaction, the user's
// tasks that waited on the server that just got a token.
func (a *App) resumeAfterLoginTx(ctx context.Context, tx *sql.Tx, res *mcpauth.CallbackResult) error {
	n, err := a.tasks.ResumeTx(ctx, tx, task.ResumeParams{Tenant: res.Tenant, User: res.User, ServerURL: res.ServerURL})
	if n > 0 {
		a.logger.InfoContext(ctx, "resuming tasks after login", slog.Int("count", n), slog.String("server_url", res.ServerURL))
	}
	return err
}

// resumeAfterRefreshTx continues, in the refresh's transaction, the user's
// tasks that paused because an earlier refresh of the connection failed.
func (a *App) resumeAfterRefreshTx(ctx context.Context, tx *sql.Tx, tenant, user, serverURL string) error {
	n, err := a.tasks.ResumeRefreshedTx(ctx, tx, task.ResumeParams{Tenant: tenant, User: user, ServerURL: serverURL})
	if n > 0 {
		a.logger.InfoContext(ctx, "resuming tasks after token refresh", slog.Int("count", n), slog.String("server_url", serverURL))
	}
	return err
}

func (a *App) migrateUp(ctx context.Context) error {
	applied, err := a.store.MigrateUp(ctx)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		a.logger.InfoContext(ctx, "applied mcpidp migrations", slog.Any("versions", applied))
	}
	m, err := rivermigrate.New(a.driver, &rivermigrate.Config{Logger: a.logger})
	if err != nil {
		return fmt.Errorf("error creating River migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("error applying River migrations: %w", err)
	}
	return nil
}

// ready is /readyz: the database answers and every migration is applied.
func (a *App) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := a.db.SQL.PingContext(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	current, err := a.store.MigrationsCurrent(ctx)
	if err != nil {
		return err
	}
	if !current {
		return errors.New("mcpidp migrations are not current: run mcpidp migrate")
	}
	m, err := rivermigrate.New(a.driver, nil)
	if err != nil {
		return err
	}
	existing, err := m.ExistingVersions(ctx)
	if err != nil {
		return fmt.Errorf("error reading River migrations: %w", err)
	}
	all := m.AllVersions()
	if len(existing) == 0 || existing[len(existing)-1].Version != all[len(all)-1].Version {
		return errors.New("River migrations are not current: run mcpidp migrate")
	}
	return nil
}

// ensureEnvTenants creates the tenants named by MCPIDP_API_KEYS.
func (a *App) ensureEnvTenants(ctx context.Context) error {
	sealed := ""
	if a.cfg.WebhookSecret != "" {
		s, err := a.keyring.Seal([]byte(a.cfg.WebhookSecret), []byte("webhook-secret"))
		if err != nil {
			return err
		}
		sealed = s
	}
	for _, tenant := range a.cfg.APIKeys {
		if err := a.store.UpsertTenant(ctx, a.store.DB(), tenant, sealed); err != nil {
			return err
		}
		if a.cfg.WebhookURL != "" {
			if err := a.store.SetTenantWebhookURL(ctx, a.store.DB(), tenant, a.cfg.WebhookURL); err != nil {
				return err
			}
		}
	}
	return nil
}

// Handler is the HTTP API; with tracing on, every request is a server span
// named after its route (the api package names it once routed).
func (a *App) Handler() http.Handler {
	h := a.api.Handler()
	if !a.tracing.Enabled {
		return h
	}
	return otelhttp.NewHandler(h, "mcpidp",
		otelhttp.WithTracerProvider(a.tracing.TracerProvider),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()), // /metrics has HTTP metrics already
		otelhttp.WithPropagators(propagation.TraceContext{}),      // continue a caller's trace
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }))
}

// Serve runs the process until ctx is canceled: the HTTP server on ln
// (unless the mode is worker-only) and River (workers unless API-only).
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	if err := a.ensureEnvTenants(ctx); err != nil {
		return err
	}
	a.guideFirstRun(ctx)
	if a.mode != ModeAPI {
		if err := a.river.Start(ctx); err != nil {
			return fmt.Errorf("error starting River: %w", err)
		}
	}
	if a.admin != nil {
		if err := a.admin.Start(ctx); err != nil {
			return fmt.Errorf("error starting River UI: %w", err)
		}
	}
	errc := make(chan error, 1)
	var srv *http.Server
	if ln != nil {
		srv = &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn)}
		go func() { errc <- srv.Serve(ln) }()
		a.logger.InfoContext(ctx, "mcpidp listening", slog.String("addr", ln.Addr().String()), slog.String("public_url", a.cfg.PublicURL))
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	a.shutdown(ctx, srv)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// shutdown stops the process gracefully: the listener closes at once (new
// connections are refused), requests in flight (chat streams, long polls)
// and running task segments get cfg.ShutdownTimeout to finish, in parallel.
// Then the remaining connections are cut and River cancels the remaining
// jobs, which it makes available again: their segments resume from the
// recorded steps in another process (or this one's next start).
func (a *App) shutdown(ctx context.Context, srv *http.Server) {
	ctx = context.WithoutCancel(ctx)
	a.logger.InfoContext(ctx, "shutting down: refusing new connections, letting requests and task segments in flight finish",
		slog.Duration("timeout", a.cfg.ShutdownTimeout))
	var wg sync.WaitGroup
	if srv != nil {
		wg.Go(func() {
			stopCtx, cancel := context.WithTimeout(ctx, a.cfg.ShutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(stopCtx); err != nil {
				a.logger.WarnContext(ctx, "requests still in flight at the shutdown deadline were cut", slog.String("error", err.Error()))
				_ = srv.Close()
			}
		})
	}
	if a.mode != ModeAPI {
		wg.Go(func() {
			// River began its soft stop when ctx was canceled and cancels
			// the jobs still running after SoftStopTimeout; the margin is
			// for those jobs to return and be marked available again.
			stopCtx, cancel := context.WithTimeout(ctx, a.cfg.ShutdownTimeout+10*time.Second)
			defer cancel()
			if err := a.river.Stop(stopCtx); err != nil {
				a.logger.WarnContext(ctx, "River did not stop in time; canceling its jobs", slog.String("error", err.Error()))
				hardCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				_ = a.river.StopAndCancel(hardCtx)
			}
		})
	}
	wg.Wait()
	a.logger.InfoContext(ctx, "stopped")
}

// keyCacheTTL maps MCPIDP_API_KEY_CACHE_TTL's 0 (off) to api's negative.
func keyCacheTTL(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// adminHandler keeps a nil *riverui.Handler from becoming a non-nil
// http.Handler.
func adminHandler(h *riverui.Handler) http.Handler {
	if h == nil {
		return nil
	}
	return h
}

// Close flushes pending traces and releases the database.
func (a *App) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.tracing.Shutdown(ctx); err != nil {
		a.logger.WarnContext(ctx, "error flushing traces", slog.String("error", err.Error()))
	}
	return a.db.Close()
}

// Store exposes the store (for tests and commands).
func (a *App) Store() *store.Store { return a.store }

// Tasks exposes the task service (for tests).
func (a *App) Tasks() *task.Service { return a.tasks }

// River exposes the River client (for tests).
func (a *App) River() *river.Client[*sql.Tx] { return a.river }
