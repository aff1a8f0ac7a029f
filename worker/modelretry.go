package worker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/riverqueue/river"

	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/internal/task"
)

// Model retry defaults.
const (
	DefaultModelRetryFor = 30 * time.Minute
	modelBackoffBase     = time.Second
	modelBackoffMax      = 5 * time.Minute
)

// ModelBackoff is the default wait before retry number retry (1 for the
// first) of a failing model call with no Retry-After: 1s, 2s, 4s… up to 5
// minutes, each drawn at random from its upper half so that tasks failing
// together do not come back together.
func ModelBackoff(retry int) time.Duration {
	d := modelBackoffMax
	if retry < 20 {
		d = min(modelBackoffBase<<max(retry-1, 0), modelBackoffMax)
	}
	return d/2 + rand.N(d/2+1)
}

// transientModelError reports whether a failed model call may succeed if
// tried again later: the upstream answered 408, 409, 429 or 5xx, or could
// not be reached or did not answer in time. Any other answer (400, 401, 403,
// 404, 422…) will not change by waiting.
func transientModelError(err error) bool {
	var apiErr *llm.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Retryable()
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return false // a wrong certificate stays wrong
	}
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return false
}

// modelRetryWait is how long to wait before trying the model again: the
// upstream's Retry-After (or retry-after-ms) when it sent one (asked is
// then true), else the backoff for retry.
func modelRetryWait(err error, retry int, now time.Time, backoff func(int) time.Duration) (wait time.Duration, asked bool) {
	var apiErr *llm.APIError
	if errors.As(err, &apiErr) {
		if d, ok := apiErr.RetryAfter(now); ok {
			return d, true
		}
	}
	return backoff(retry), false
}

// retryModel handles a transient model failure of a running task: it saves
// the streak (whose start bounds the whole wait, across restarts) and
// snoozes the job, so that no worker is held while the task waits. Once
// the next try would fall after ModelRetryFor from the streak's first
// failure, the task fails with model_error instead.
func (w *TaskRunner) retryModel(ctx context.Context, t *store.Task, cause error) error {
	st := w.cfg.Store
	now := st.Now()
	r, err := st.GetModelRetry(ctx, st.DB(), t.ID)
	if err != nil {
		return err
	}
	if r.Since.IsZero() {
		r = store.ModelRetry{Since: now}
	}
	r.Retries++
	wait, asked := modelRetryWait(cause, r.Retries, now, w.cfg.ModelBackoffFunc)
	deadline := r.Since.Add(w.cfg.ModelRetryFor)
	// An upstream that asks for more time than is left will not be ready
	// in time: fail now rather than at the deadline.
	if !now.Before(deadline) || asked && now.Add(wait).After(deadline) {
		return &task.Failure{Code: task.CodeModelError, Message: fmt.Sprintf("%v (gave up after %d tries in %s; MCPIDP_MODEL_RETRY_FOR is %s)",
			cause, r.Retries, now.Sub(r.Since).Round(time.Second), w.cfg.ModelRetryFor)}
	}
	// Without a hint, the last try is at the deadline, not past it.
	wait = min(wait, deadline.Sub(now))
	ok, err := st.ScheduleModelRetry(ctx, st.DB(), t.ID, t.Segment, r, now.Add(wait))
	if err != nil {
		return err
	}
	if !ok {
		return task.ErrCanceled
	}
	w.cfg.Logger.InfoContext(ctx, "model call failed, task will retry", slog.String("task_id", t.ID),
		slog.Int("retry", r.Retries), slog.Duration("wait", wait), slog.String("error", redactQueries(cause.Error())))
	return river.JobSnooze(wait)
}
