package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
)

// OAuthMaintenanceArgs refreshes tokens that are about to expire and deletes
// expired OAuth states and login links. Run periodically.
type OAuthMaintenanceArgs struct{}

// Kind implements river.JobArgs.
func (OAuthMaintenanceArgs) Kind() string { return "oauth_maintenance" }

// InsertOpts implements river.JobArgsWithInsertOpts: one pending run at a
// time is enough.
func (OAuthMaintenanceArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByPeriod: time.Minute}}
}

// RefreshAhead is how far ahead of expiry the periodic job refreshes tokens.
const RefreshAhead = 5 * time.Minute

// OAuthMaintainer is the worker for OAuthMaintenanceArgs.
type OAuthMaintainer struct {
	river.WorkerDefaults[OAuthMaintenanceArgs]
	engine *mcpauth.Engine
	logger *slog.Logger
}

// NewOAuthMaintainer returns the worker.
func NewOAuthMaintainer(engine *mcpauth.Engine, logger *slog.Logger) *OAuthMaintainer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &OAuthMaintainer{engine: engine, logger: logger}
}

// Work implements river.Worker.
func (m *OAuthMaintainer) Work(ctx context.Context, _ *river.Job[OAuthMaintenanceArgs]) error {
	refreshed, err := m.engine.RefreshExpiring(ctx, RefreshAhead)
	if err != nil {
		m.logger.WarnContext(ctx, "oauth maintenance: refreshing tokens", slog.String("error", err.Error()))
	}
	removed, cerr := m.engine.Cleanup(ctx)
	if cerr != nil {
		return cerr
	}
	if refreshed > 0 || removed > 0 {
		m.logger.InfoContext(ctx, "oauth maintenance", slog.Int("refreshed", refreshed), slog.Int64("removed", removed))
	}
	return err
}
