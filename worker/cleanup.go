package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/mcpidp/mcpidp/internal/store"
)

// CleanupArgs deletes tasks whose retention has run out (store=false
// results 24 h after they end) and webhook deliveries that ended more than
// DeliveryRetention ago. Run periodically.
type CleanupArgs struct{}

// Kind implements river.JobArgs.
func (CleanupArgs) Kind() string { return "task_cleanup" }

// DeliveryRetention is how long finished webhook deliveries (and their
// attempts) stay listed.
const DeliveryRetention = 7 * 24 * time.Hour

// Cleaner is the worker for CleanupArgs.
type Cleaner struct {
	river.WorkerDefaults[CleanupArgs]
	store  *store.Store
	logger *slog.Logger
}

// NewCleaner returns a Cleaner.
func NewCleaner(st *store.Store, logger *slog.Logger) (*Cleaner, error) {
	if st == nil {
		return nil, errors.New("cleaner: store is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Cleaner{store: st, logger: logger}, nil
}

// Work implements river.Worker.
func (c *Cleaner) Work(ctx context.Context, _ *river.Job[CleanupArgs]) error {
	n, err := c.store.DeleteExpiredTasks(ctx, c.store.DB())
	if err != nil {
		return err
	}
	if n > 0 {
		c.logger.InfoContext(ctx, "deleted expired tasks", slog.Int("count", n))
	}
	if _, err := c.store.DeleteFinishedWebhookDeliveries(ctx, c.store.DB(), c.store.Now().Add(-DeliveryRetention)); err != nil {
		return err
	}
	return nil
}
