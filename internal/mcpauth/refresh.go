package mcpauth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpidp/mcpidp/internal/store"
)

const (
	// refreshTimeout bounds one refresh request.
	refreshTimeout = 30 * time.Second
	// refreshLeaseTerm is how long a refresher holds a connection's refresh
	// lease: longer than its token request may take, so that a live
	// refresher keeps it to the end, and short, so that the lease of a
	// refresher that crashed soon stops blocking the others.
	refreshLeaseTerm = refreshTimeout + 15*time.Second
	// storeTimeout bounds storing a refresh's outcome or giving its lease
	// back, which happen even when the caller's context has ended: a
	// rotated refresh token must not be lost, and nobody should wait for
	// the lease's term.
	storeTimeout = 10 * time.Second
	// Callers waiting for someone else's refresh re-read the connection
	// this often, the interval doubling from the first to the second.
	leasePollMin = 10 * time.Millisecond
	leasePollMax = 250 * time.Millisecond
)

// errLeaseLost means a refresh's outcome was not stored because its lease
// was dropped (a new login replaced the tokens) or taken over meanwhile: the
// caller reads the connection again.
var errLeaseLost = errors.New("refresh lease lost")

// errRefresh marks a failed token request (other than invalid_grant).
var errRefresh = errors.New("token refresh failed")

// refresh refreshes a connection unless its token turns out to be good for
// leeway more (another caller refreshed it meanwhile). Only the holder of
// the connection's refresh lease refreshes; everyone else waits for the
// lease to go (or to outlive its term, when its holder is gone) and reads
// the row again. No transaction is open during the token request, so a slow
// authorization server holds up nobody but the callers that need its token.
// It returns the access token to use and whether this call refreshed it.
func (e *Engine) refresh(ctx context.Context, tenant, id string, leeway time.Duration) (string, bool, error) {
	var (
		watched      string    // a lease someone else holds
		watchedSince time.Time // when this call first saw it, by the wall clock
		poll         = leasePollMin
	)
	for {
		var (
			c       *store.OAuthConnection
			token   string
			ready   bool
			leaseID string
		)
		err := e.store.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			c, err = e.store.GetOAuthConnectionForUpdate(ctx, tx, tenant, id)
			if err != nil {
				return err
			}
			if c.Status != store.OAuthConnectionActive {
				return &NeedsLoginError{ServerURL: c.ServerURL, Reason: string(c.Status)}
			}
			now := e.now()
			if usable(c, now, leeway) {
				token, err = e.openToken(c, "access-token", c.AccessToken)
				ready = err == nil
				return err
			}
			if c.RefreshToken == "" {
				return &NeedsLoginError{ServerURL: c.ServerURL, Reason: StatusExpired}
			}
			replacing := ""
			if c.RefreshLeaseID != "" && c.RefreshLeaseUntil != nil && now.Before(*c.RefreshLeaseUntil) {
				if c.RefreshLeaseID != watched {
					watched, watchedSince = c.RefreshLeaseID, time.Now()
					return nil
				}
				if time.Since(watchedSince) < refreshLeaseTerm {
					return nil
				}
				// The lease outlived its term while this call watched it:
				// its holder is gone (or the clocks disagree).
				replacing = watched
			}
			lease := store.NewToken()
			ok, err := e.store.TakeOAuthRefreshLease(ctx, tx, tenant, c.ID, lease, now, now.Add(refreshLeaseTerm), replacing)
			if ok {
				leaseID = lease
			}
			return err
		})
		switch {
		case err != nil:
			return "", false, err
		case ready:
			return token, false, nil
		case leaseID == "":
			if err := e.refreshWaits.wait(ctx, id, poll); err != nil {
				return "", false, err
			}
			poll = min(2*poll, leasePollMax)
			continue
		}
		// Once the lease is ours the refresh runs to its end even if this
		// caller goes away: the authorization server may already have
		// rotated the refresh token, and the new one must be stored.
		// refreshLeased bounds itself (refreshTimeout, storeTimeout).
		type result struct {
			token     string
			refreshed bool
			err       error
		}
		done := make(chan result, 1)
		go func() {
			token, refreshed, err := e.refreshLeased(context.WithoutCancel(ctx), c, leaseID)
			done <- result{token, refreshed, err}
		}()
		select {
		case <-ctx.Done():
			return "", false, ctx.Err()
		case res := <-done:
			if errors.Is(res.err, errLeaseLost) {
				continue
			}
			return res.token, res.refreshed, res.err
		}
	}
}

// refreshLeased makes the token request for a connection whose refresh
// lease is leaseID, with no transaction open, and stores the outcome only
// while the lease is still leaseID, releasing it.
func (e *Engine) refreshLeased(ctx context.Context, c *store.OAuthConnection, leaseID string) (token string, refreshed bool, err error) {
	done := e.refreshWaits.start(c.ID)
	defer func() { done(err) }()
	// storeCtx outlives ctx: once the authorization server has rotated the
	// refresh token, the new one must be stored.
	storeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	release := true
	defer func() {
		if !release {
			return
		}
		if err := e.store.ReleaseOAuthRefreshLease(storeCtx, e.store.DB(), c.TenantID, c.ID, leaseID); err != nil {
			e.logger.WarnContext(ctx, "mcpauth: error releasing refresh lease", slog.String("connection_id", c.ID), slogError(err))
		}
	}()

	rt, err := e.openToken(c, "refresh-token", c.RefreshToken)
	if err != nil {
		return "", false, err
	}
	secret, err := e.clientSecret(ctx, e.store.DB(), &c.OAuthAuthority)
	if errors.Is(err, errClientGone) {
		// The registration the refresh token was issued to was dropped
		// (the authorization server rejected it): only a new login helps.
		e.logger.WarnContext(ctx, "mcpauth: the connection's client registration is gone, connection needs a new login",
			slog.String("connection_id", c.ID), slogIssuer(c.Issuer))
		return e.refreshRefused(storeCtx, c, leaseID, &release)
	}
	if err != nil {
		return "", false, err
	}
	cfg, err := e.oauthConfig(&c.OAuthAuthority, secret, nil)
	if err != nil {
		return "", false, err
	}
	rctx, cancelRequest := context.WithTimeout(ctx, refreshTimeout)
	extra := url.Values{"resource": {c.Resource}}
	for k, v := range clientIDParam(&c.OAuthAuthority) {
		extra[k] = v
	}
	tok, err := cfg.TokenSource(e.oauthContext(rctx, extra), &oauth2.Token{RefreshToken: rt}).Token()
	cancelRequest()
	if err == nil {
		err = checkToken(tok)
	}
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re) && re.ErrorCode == "invalid_grant":
		e.logger.WarnContext(ctx, "mcpauth: refresh token refused, connection needs a new login",
			slog.String("connection_id", c.ID), slogIssuer(c.Issuer), slog.String("error_description", re.ErrorDescription))
		return e.refreshRefused(storeCtx, c, leaseID, &release)
	case e.forgetRejectedClient(ctx, &c.OAuthAuthority, err):
		// invalid_client (or unauthorized_client, see clientRejection): the
		// refresh token belongs to a client the
		// authorization server no longer knows (or no longer accepts), so
		// refreshing again cannot work; the next login registers afresh.
		e.logger.WarnContext(ctx, "mcpauth: client refused at refresh, connection needs a new login",
			slog.String("connection_id", c.ID), slogIssuer(c.Issuer), slog.String("error_description", re.ErrorDescription))
		return e.refreshRefused(storeCtx, c, leaseID, &release)
	case err != nil:
		if c.AccessToken != "" && c.ExpiresAt != nil && e.now().Before(*c.ExpiresAt) {
			// The old token still works for a little while; use it and let
			// the next call try again.
			e.logger.WarnContext(ctx, "mcpauth: refresh failed, using the current token until it expires",
				slog.String("connection_id", c.ID), slogIssuer(c.Issuer), slog.String("error", describeTokenError(err)))
			token, err := e.openToken(c, "access-token", c.AccessToken)
			return token, false, err
		}
		return "", false, fmt.Errorf("error refreshing token for %s at %s: %s: %w", c.ServerURL, c.Issuer, describeTokenError(err), errRefresh)
	}

	scopes := c.Scopes
	if s, ok := tok.Extra("scope").(string); ok && s != "" {
		scopes = s
	}
	sealed := *c
	if err := e.sealTokens(&sealed, tok.AccessToken, tok.RefreshToken); err != nil {
		return "", false, err
	}
	update := store.OAuthTokenUpdate{
		AccessToken: sealed.AccessToken, RefreshToken: sealed.RefreshToken, TokenType: tok.TokenType, Scopes: scopes,
		ExpiresAt: e.tokenExpiry(tok), LeaseID: leaseID,
	}
	if e.tokenRefreshed == nil || !e.newAccessToken(c, tok.AccessToken) {
		err = e.store.UpdateOAuthConnectionTokens(storeCtx, e.store.DB(), c.TenantID, c.ID, update)
	} else {
		// The new token and what it sets going (the tasks waiting for it)
		// commit together. Anything that waits in the database when this
		// runs began waiting before this token existed.
		err = e.store.InTx(storeCtx, func(tx *sql.Tx) error {
			if err := e.store.UpdateOAuthConnectionTokens(storeCtx, tx, c.TenantID, c.ID, update); err != nil {
				return err
			}
			return e.tokenRefreshed(storeCtx, tx, c.TenantID, c.UserID, c.ServerURL)
		})
		if err != nil && !errors.Is(err, store.ErrConflict) {
			// The rotated refresh token must not be lost to a failure of
			// what the token sets going.
			e.logger.WarnContext(ctx, "mcpauth: error acting on a refreshed token, storing it alone",
				slog.String("connection_id", c.ID), slogError(err))
			err = e.store.UpdateOAuthConnectionTokens(storeCtx, e.store.DB(), c.TenantID, c.ID, update)
		}
	}
	if errors.Is(err, store.ErrConflict) {
		release = false
		return "", false, errLeaseLost
	}
	if err != nil {
		return "", false, err
	}
	release = false
	return tok.AccessToken, true, nil
}

// newAccessToken reports whether token differs from the connection's
// stored access token: an authorization server may hand the same one back.
func (e *Engine) newAccessToken(c *store.OAuthConnection, token string) bool {
	if c.AccessToken == "" {
		return true
	}
	old, err := e.openToken(c, "access-token", c.AccessToken)
	return err != nil || old != token
}

// refreshRefused marks a connection whose refresh the authorization server
// refused for good refresh_failed (with RefreshFailedTxFunc, in one
// transaction) and returns what refreshLeased returns. The status change
// drops the lease, so *release becomes false whatever happens.
func (e *Engine) refreshRefused(storeCtx context.Context, c *store.OAuthConnection, leaseID string, release *bool) (string, bool, error) {
	err := e.store.InTx(storeCtx, func(tx *sql.Tx) error {
		if err := e.store.MarkOAuthConnectionRefreshFailed(storeCtx, tx, c.TenantID, c.ID, leaseID); err != nil {
			return err
		}
		failed := *c
		failed.Status = store.OAuthConnectionRefreshFailed
		if e.refreshFailed != nil {
			return e.refreshFailed(storeCtx, tx, c.TenantID, c.UserID, e.connection(&failed))
		}
		return nil
	})
	if errors.Is(err, store.ErrConflict) {
		*release = false
		return "", false, errLeaseLost
	}
	if err != nil {
		return "", false, err
	}
	*release = false
	return "", false, &NeedsLoginError{ServerURL: c.ServerURL, Reason: StatusRefreshFailed}
}

// refreshWaits wakes the callers of this process that wait for a refresh
// this process makes as soon as it ends, instead of at their next poll of
// the database. Callers in other processes poll.
type refreshWaits struct {
	mu sync.Mutex
	m  map[string]*refreshRun
}

// refreshRun is one refresh under way in this process.
type refreshRun struct {
	done chan struct{}
	err  error // set before done closes: a failed token request
}

// start records a refresh of the connection under way and returns the
// function that ends it with the refresh's outcome.
func (w *refreshWaits) start(connectionID string) func(error) {
	run := &refreshRun{done: make(chan struct{})}
	w.mu.Lock()
	if w.m == nil {
		w.m = map[string]*refreshRun{}
	}
	w.m[connectionID] = run
	w.mu.Unlock()
	return func(err error) {
		w.mu.Lock()
		if w.m[connectionID] == run {
			delete(w.m, connectionID)
		}
		w.mu.Unlock()
		if errors.Is(err, errRefresh) {
			run.err = err
		}
		close(run.done)
	}
}

// wait returns when this process's refresh of the connection ends, after d
// at the latest, or with ctx's error. When the refresh it waited for failed
// at the authorization server, it returns that error: the waiters share
// the outcome instead of each trying again in turn.
func (w *refreshWaits) wait(ctx context.Context, connectionID string, d time.Duration) error {
	w.mu.Lock()
	run := w.m[connectionID] // nil when the refresh is not ours
	w.mu.Unlock()
	var done chan struct{} // nil: never ready
	if run != nil {
		done = run.done
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return run.err
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}
