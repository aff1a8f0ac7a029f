-- Login CSRF protection: each OAuth state is bound to the browser that opened
-- the login link. That browser got a random value in a cookie; its SHA-256 is
-- kept here and the callback must present the value. Empty for states made
-- before this column existed, which no callback can then complete.
ALTER TABLE mcpidp_oauth_state ADD COLUMN browser_hash TEXT NOT NULL DEFAULT '';
