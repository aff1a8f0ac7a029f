package task

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/mcpidp/mcpidp/internal/store"
)

// TimeoutParams names the pause an authorization timeout job was
// scheduled for.
type TimeoutParams struct {
	TaskID  string
	Segment int
}

// pausedTask returns the task when it is still paused with status in the
// given segment; nil (and no error) when it is gone or has moved on, which
// leaves a timeout or recheck job for an earlier pause nothing to do.
func (s *Service) pausedTask(ctx context.Context, id string, status Status, segment int) (*store.Task, error) {
	t, err := s.cfg.Store.GetTaskByID(ctx, s.cfg.Store.DB(), id)
	if err != nil {
		return nil, ignoreNotFound(err)
	}
	if t.Status != status || t.Segment != segment {
		return nil, nil
	}
	return t, nil
}

// TimeoutAuthorization fails a task still waiting, in the given segment,
// on a login whose link has expired (Finish with authorization_timeout).
// It decides by the store's clock, so the deadline is the one the task
// shows; when that clock says "not yet", it returns how long to wait
// before asking again. A login whose resume was lost resumes the task
// instead, and so does a task left waiting on nothing.
func (s *Service) TimeoutAuthorization(ctx context.Context, p TimeoutParams) (time.Duration, error) {
	st := s.cfg.Store
	t, err := s.pausedTask(ctx, p.TaskID, StatusAwaitingAuthorization, p.Segment)
	if t == nil {
		return 0, err
	}
	waits, err := st.TaskWaits(ctx, st.DB(), t.ID)
	if err != nil {
		return 0, err
	}
	// A login whose resume was lost must not end in a timeout.
	resumedAny := false
	for _, w := range waits {
		done, err := st.LoginCompletedSince(ctx, st.DB(), t.TenantID, t.UserID, w.ServerURL, w.CreatedAt)
		if err != nil {
			return 0, err
		}
		if done {
			if _, err := s.Resume(ctx, ResumeParams{Tenant: t.TenantID, User: t.UserID, ServerURL: w.ServerURL, TaskID: t.ID}); err != nil {
				return 0, err
			}
			resumedAny = true
		}
	}
	if resumedAny {
		if waits, err = st.TaskWaits(ctx, st.DB(), t.ID); err != nil {
			return 0, err
		}
		if t, err = st.GetTaskByID(ctx, st.DB(), t.ID); err != nil || t.Status != StatusAwaitingAuthorization {
			return 0, err
		}
	}
	now := st.Now()
	var expired []string
	var soonest time.Time
	for _, w := range waits {
		if !now.Before(w.ExpiresAt) {
			expired = append(expired, w.ServerURL)
		} else if soonest.IsZero() || w.ExpiresAt.Before(soonest) {
			soonest = w.ExpiresAt
		}
	}
	if len(waits) == 0 {
		// Waiting on nothing, yet not resumed: resume it rather than let it
		// wait forever.
		rc, err := s.river(ctx)
		if err != nil {
			return 0, err
		}
		return 0, st.InTx(ctx, func(tx *sql.Tx) error {
			locked, err := st.GetTaskForUpdate(ctx, tx, t.ID)
			if err != nil {
				return err
			}
			if rest, err := st.TaskWaits(ctx, tx, t.ID); err != nil || len(rest) > 0 {
				return err
			}
			_, err = s.resumeTx(ctx, tx, rc, locked)
			return err
		})
	}
	if len(expired) == 0 {
		return soonest.Sub(now), nil
	}
	_, err = s.Finish(ctx, FinishParams{TaskID: t.ID, Status: StatusFailed, OnlyFrom: StatusAwaitingAuthorization, Segment: &t.Segment,
		Error: &Error{Code: CodeAuthorizationTimeout, Message: "nobody logged in to " + strings.Join(expired, ", ") + " before the login link expired"}})
	return 0, err
}

// RecheckParams names a pause and when its segment began.
type RecheckParams struct {
	TaskID  string
	Segment int
	Since   time.Time
}

// RecheckLogins resumes a task, right after its pause committed, for any
// login that completed between its challenge and its pause: that login
// found no waiting task to resume.
func (s *Service) RecheckLogins(ctx context.Context, p RecheckParams) error {
	st := s.cfg.Store
	t, err := s.pausedTask(ctx, p.TaskID, StatusAwaitingAuthorization, p.Segment)
	if t == nil {
		return err
	}
	waits, err := st.TaskWaits(ctx, st.DB(), t.ID)
	if err != nil {
		return err
	}
	for _, w := range waits {
		done, err := st.LoginCompletedSince(ctx, st.DB(), t.TenantID, t.UserID, w.ServerURL, p.Since)
		if err != nil {
			return err
		}
		if done {
			if _, err := s.Resume(ctx, ResumeParams{Tenant: t.TenantID, User: t.UserID, ServerURL: w.ServerURL, TaskID: t.ID}); err != nil {
				return err
			}
		}
	}
	return nil
}

func ignoreNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
