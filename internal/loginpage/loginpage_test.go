package loginpage_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/loginpage"
	"github.com/mcpidp/mcpidp/internal/mcpauth"
)

func TestStartFailed(t *testing.T) {
	t.Parallel()
	page, known := loginpage.StartFailed(fmt.Errorf("starting login: %w", mcpauth.ErrLoginLinkInvalid))
	require.True(t, known)
	require.Equal(t, http.StatusNotFound, page.Status)
	require.Equal(t, "This login link has expired", page.Title)

	page, known = loginpage.StartFailed(errors.New("dial tcp: connection refused"))
	require.False(t, known, "an unexpected failure is for the caller to log")
	require.Equal(t, http.StatusBadGateway, page.Status)
	require.NotContains(t, page.Message, "connection refused", "the cause is not shown to the browser")
}

func TestCallbackFailed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err     error
		status  int
		title   string
		message string
		known   bool
	}{
		{&mcpauth.AuthorizationError{Code: "access_denied", Description: "user said no"}, http.StatusForbidden, "Access was denied", "nothing was connected. (user said no)", true},
		{fmt.Errorf("callback: %w", &mcpauth.AuthorizationError{Code: "invalid_scope"}), http.StatusBadRequest, "The authorization server reported an error", "invalid_scope", true},
		{fmt.Errorf("callback: %w", mcpauth.ErrStateInvalid), http.StatusBadRequest, "This login has expired or was already used", "Open the login link again", true},
		{mcpauth.ErrIssuerMismatch, http.StatusBadRequest, "The login answer came from the wrong server", "refused", true},
		{mcpauth.ErrExchangeFailed, http.StatusBadGateway, "The login could not be completed", "did not accept the login code", true},
		{fmt.Errorf("callback: %w", mcpauth.ErrOtherBrowser), http.StatusBadRequest, "This login was started in another browser", "Open the login link again in this browser", true},
		{&mcpauth.ExchangeError{Status: 401, Code: "invalid_client", Description: "unknown client"}, http.StatusBadGateway, "The login could not be completed",
			"did not accept the login code: invalid_client (unknown client). Open the login link again.", true},
		{&mcpauth.ExchangeError{Status: 503, Err: errors.New("HTTP 503")}, http.StatusBadGateway, "The login could not be completed", "answered HTTP 503", true},
		{&mcpauth.ExchangeError{Err: errors.New("dial tcp: connection refused")}, http.StatusBadGateway, "The login could not be completed", "could not be reached", true},
		{errors.New("database is locked"), http.StatusInternalServerError, "The login could not be completed", "An internal error occurred.", false},
	} {
		page, known := loginpage.CallbackFailed(tc.err)
		require.Equal(t, tc.known, known, tc.err.Error())
		require.Equal(t, tc.status, page.Status, tc.err.Error())
		require.Equal(t, tc.title, page.Title, tc.err.Error())
		require.Contains(t, page.Message, tc.message, tc.err.Error())
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	loginpage.Write(rec, loginpage.Authorized("https://mcp.example.com:8443/mcp"))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	require.Equal(t, "no-referrer", rec.Header().Get("Referrer-Policy"))
	require.Contains(t, rec.Body.String(), "<h1>You&#39;ve authorized mcp.example.com:8443</h1>")
	require.Contains(t, rec.Body.String(), "<p>You can close this window and go back to the application.</p>")

	// Text from the authorization server is escaped.
	rec = httptest.NewRecorder()
	page, _ := loginpage.CallbackFailed(&mcpauth.AuthorizationError{Code: "access_denied", Description: "<script>x</script>"})
	loginpage.Write(rec, page)
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.NotContains(t, rec.Body.String(), "<script>")
	require.Contains(t, rec.Body.String(), "&lt;script&gt;")
}

func TestNewHandlerValidates(t *testing.T) {
	t.Parallel()
	_, err := loginpage.NewHandler(loginpage.HandlerConfig{})
	require.ErrorContains(t, err, "OAuth engine is required")
}
