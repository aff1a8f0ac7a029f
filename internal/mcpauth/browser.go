package mcpauth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/mcpidp/mcpidp/internal/store"
)

// Login CSRF protection. Whoever holds a state could otherwise send anyone's
// browser to the callback with their own code and state, and connect that
// browser's user to the sender's account. So each visit of a login link sets
// a cookie in the browser that made it, and the callback must carry it.
//
// The cookie is named after its state, so that any number of logins can be
// in flight in one browser; its path is the callback's, so it is sent there
// only; it is HttpOnly, SameSite=Lax (sent on the authorization server's
// top-level redirect back, not on cross-site subrequests) and Secure when
// the public URL is https. Only the SHA-256 of its random value is stored,
// with the state. It lives as long as the state and is not deleted at the
// callback, so that the same answer opened again in the same browser is
// told it was already used rather than that it came from another browser.

// ErrOtherBrowser means the callback did not come from the browser that
// opened the login link: it lacks that browser's cookie. Nothing was
// connected and the state was not used up, so the browser that started the
// login can still finish it.
var ErrOtherBrowser = errors.New("this login was started in another browser")

// browserCookiePrefix starts the name of every login cookie.
const browserCookiePrefix = "mcpidp_login_"

// browserCookieName names the cookie of one state: it is derived from the
// state so the callback can find it, but does not reveal it.
func browserCookieName(state string) string {
	sum := sha256.Sum256([]byte("mcpidp/login-cookie\x00" + state))
	return browserCookiePrefix + hex.EncodeToString(sum[:12])
}

// browserCookie is the cookie that binds state to the browser holding value.
func (e *Engine) browserCookie(state, value string, maxAge time.Duration) *http.Cookie {
	return &http.Cookie{
		Name:     browserCookieName(state),
		Value:    value,
		Path:     e.callbackPath,
		MaxAge:   int(maxAge / time.Second),
		Secure:   e.secureCookies,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// newBrowserBinding returns the cookie for a new state and the hash to
// store with it.
func (e *Engine) newBrowserBinding(state string) (*http.Cookie, string) {
	value := store.NewToken()
	return e.browserCookie(state, value, e.stateTTL), hashState(value)
}

// fromBrowser reports whether cookies hold the value whose hash,
// browserHash, is stored with the state. A state stored without one (made
// before browsers were bound) matches no browser.
func fromBrowser(browserHash, state string, cookies []*http.Cookie) bool {
	if browserHash == "" {
		return false
	}
	name := browserCookieName(state)
	for _, c := range cookies {
		if c.Name == name && hashState(c.Value) == browserHash {
			return true
		}
	}
	return false
}
