package agentloop

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
	"github.com/mcpidp/mcpidp/internal/mcpclient"
)

// UserConnect returns a ConnectFunc that opens sessions with the tenant's
// user's OAuth tokens. opts supplies the HTTP client (the SSRF guard) and
// logger; its AuthorizeFunc and UnauthorizedFunc are replaced by the
// engine's. Whenever the server answers 401, at the handshake or to a later
// tools/list or tools/call, the request is sent once more if that can help:
// the token that was sent is refreshed at once (the engine is told it was
// rejected), or a login stored a token since the request left without one.
// Otherwise the challenge is returned as *mcpclient.AuthChallengeError, with
// RenewErr set when the refresh itself failed. Tasks and the chat proxy
// both connect through it. One ConnectFunc serves one run: its sessions
// share what they learned of the user's tokens for mcpauth.RunTokenTTL
// (see mcpauth.RunAuth).
//
// A server given its own Authorization header (a static key in the
// request's "headers") is connected with that header alone: the engine
// would otherwise remove it whenever the user has no token.
func UserConnect(oauth *mcpauth.Engine, opts mcpclient.Options, tenant, user string) ConnectFunc {
	opts.AuthorizeFunc, opts.UnauthorizedFunc = nil, nil
	withToken := opts
	run := oauth.RunAuth(tenant, user) // one memory of the tokens for all of the run's sessions
	withToken.AuthorizeFunc = run.Authorize
	withToken.UnauthorizedFunc = run.Unauthorized
	return func(ctx context.Context, server mcpclient.Server) (*mcpclient.Session, error) {
		for name := range server.Headers {
			if http.CanonicalHeaderKey(name) == "Authorization" {
				return mcpclient.Connect(ctx, opts, server)
			}
		}
		return mcpclient.Connect(ctx, withToken, server)
	}
}

// Challenges returns the authorization challenges an error of ConnectMCP or
// of a tool call carries (a *ChallengesError or a single
// *mcpclient.AuthChallengeError), or nil when it carries none.
func Challenges(err error) []*mcpclient.AuthChallengeError {
	var all *ChallengesError
	if errors.As(err, &all) {
		return all.Challenges
	}
	var one *mcpclient.AuthChallengeError
	if errors.As(err, &one) {
		return []*mcpclient.AuthChallengeError{one}
	}
	return nil
}

// IsChallenge is an ErrorIsFatalFunc: a tool call that needs a login ends
// the run instead of being shown to the model.
func IsChallenge(err error) bool {
	var ch *mcpclient.AuthChallengeError
	return errors.As(err, &ch)
}

// LoginLink is the login link for one server that asked for a login, or
// the reason none could be made (Err).
type LoginLink struct {
	ServerURL        string
	LoginID          string
	AuthorizationURL string
	ExpiresAt        time.Time
	Err              error
}

// BeginLogins starts a login for every challenge, in order. A server whose
// login cannot be started (its authorization server cannot be found or
// used) gets a LoginLink with Err set; the others still get their link.
func BeginLogins(ctx context.Context, oauth *mcpauth.Engine, tenant, user string, challenges []*mcpclient.AuthChallengeError) []LoginLink {
	links := make([]LoginLink, 0, len(challenges))
	for _, ch := range challenges {
		login, err := oauth.BeginLogin(ctx, mcpauth.LoginParams{Tenant: tenant, User: user, ServerURL: ch.ServerURL, WWWAuthenticate: ch.WWWAuthenticate})
		if err != nil {
			links = append(links, LoginLink{ServerURL: ch.ServerURL, Err: err})
			continue
		}
		links = append(links, LoginLink{ServerURL: ch.ServerURL, LoginID: login.ID, AuthorizationURL: login.AuthorizationURL, ExpiresAt: login.ExpiresAt})
	}
	return links
}
