package mcpauth

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// RunTokenTTL bounds how long one run (a chat request, a task segment)
// reuses what it learned of a user's token for a server, instead of asking
// the database on each of its MCP requests. A token is never reused past
// the point where AccessToken would refresh it; a token revoked or replaced
// meanwhile is noticed when the server refuses it (the 401 path asks
// again), at once when the login or revocation happened in this process,
// or after at most this long.
const RunTokenTTL = 30 * time.Second

// RunAuth is the credentials of one run for the tenant's user: Authorize
// and Unauthorized, with the signatures of mcpclient.AuthorizeFunc and
// mcpclient.UnauthorizedFunc, sharing a memory of the token (or of its
// absence) per server for up to RunTokenTTL. An MCP session makes several
// HTTP requests (initialize, notifications, tools/list, tools/call, the
// close); without the memory each would cost a database query. Safe for
// concurrent use; make one per run.
type RunAuth struct {
	e            *Engine
	tenant, user string

	mu     sync.Mutex
	tokens map[string]runToken
	// gens counts, per server, the times a token was refused, so that a
	// lookup that began before a refusal does not store what it read.
	gens map[string]int
}

type runToken struct {
	token string // "" when the user has no usable token
	until time.Time
	gen   uint64 // the user's generation it was read at (Engine.userGen)
}

// RunAuth returns the credentials of one run for the tenant's user.
func (e *Engine) RunAuth(tenant, user string) *RunAuth {
	return &RunAuth{e: e, tenant: tenant, user: user, tokens: map[string]runToken{}, gens: map[string]int{}}
}

// Authorize sets "Authorization: Bearer …" on a request to serverURL, or
// removes the header when the user has no usable token (as Authorizer).
func (r *RunAuth) Authorize(ctx context.Context, serverURL string, req *http.Request) error {
	now := r.e.now()
	// Read before the token, so that a login completing during the
	// lookup makes the next request look again.
	userGen := r.e.userGen(r.tenant, r.user)
	r.mu.Lock()
	t, ok := r.tokens[serverURL]
	gen := r.gens[serverURL]
	r.mu.Unlock()
	if !ok || !now.Before(t.until) || t.gen != userGen {
		token, until, err := r.e.accessToken(ctx, r.tenant, r.user, serverURL, RunTokenTTL)
		switch {
		case errors.Is(err, ErrLoginRequired):
			t = runToken{until: now.Add(RunTokenTTL), gen: userGen}
		case err != nil:
			return err
		default:
			t = runToken{token: token, until: until, gen: userGen}
		}
		r.mu.Lock()
		if r.gens[serverURL] == gen {
			r.tokens[serverURL] = t
		}
		r.mu.Unlock()
	}
	if t.token == "" {
		req.Header.Del("Authorization")
		return nil
	}
	req.Header.Set("Authorization", "Bearer "+t.token)
	return nil
}

// Unauthorized is Engine.Unauthorized for the run: the server refused what
// Authorize sent, so the run forgets it and the next request asks again.
func (r *RunAuth) Unauthorized(ctx context.Context, serverURL, authorization string) (bool, error) {
	r.forget(serverURL)
	retry, err := r.e.Unauthorized(r.tenant, r.user)(ctx, serverURL, authorization)
	r.forget(serverURL)
	return retry, err
}

func (r *RunAuth) forget(serverURL string) {
	r.mu.Lock()
	delete(r.tokens, serverURL)
	r.gens[serverURL]++
	r.mu.Unlock()
}
