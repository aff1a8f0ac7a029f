-- OAuth for MCP servers (internal/mcpauth). Tokens, refresh tokens, client
-- secrets and PKCE verifiers are sealed by secretbox before they get here.

-- Clients this deployment registered dynamically (RFC 7591), one per
-- authorization server and redirect URI. They are shared by all tenants: the
-- OAuth client is mcpidp itself, never a tenant.
CREATE TABLE mcpidp_oauth_client (
    issuer                     TEXT NOT NULL,
    redirect_uri               TEXT NOT NULL,
    client_id                  TEXT NOT NULL,
    client_secret              TEXT NOT NULL DEFAULT '',
    token_endpoint_auth_method TEXT NOT NULL,
    secret_expires_at          INTEGER,
    created_at                 INTEGER NOT NULL,
    PRIMARY KEY (issuer, redirect_uri)
);

-- A login link (/oauth/start/{id}): what discovery found for one tenant, user
-- and MCP server, so any process can start and finish the flow without
-- discovering again. The id is the capability.
CREATE TABLE mcpidp_oauth_login (
    id                         TEXT PRIMARY KEY,
    tenant_id                  TEXT NOT NULL REFERENCES mcpidp_tenant (id) ON DELETE CASCADE,
    user_id                    TEXT NOT NULL,
    server_url                 TEXT NOT NULL,
    resource                   TEXT NOT NULL,
    issuer                     TEXT NOT NULL,
    authorization_endpoint     TEXT NOT NULL,
    token_endpoint             TEXT NOT NULL,
    revocation_endpoint        TEXT NOT NULL DEFAULT '',
    iss_parameter_supported    BOOLEAN NOT NULL DEFAULT FALSE,
    client_id                  TEXT NOT NULL,
    token_endpoint_auth_method TEXT NOT NULL,
    scopes                     TEXT NOT NULL DEFAULT '',
    created_at                 INTEGER NOT NULL,
    expires_at                 INTEGER NOT NULL,
    completed_at               INTEGER
);

CREATE INDEX mcpidp_oauth_login_expires ON mcpidp_oauth_login (expires_at);

-- One visit of a login link: a single-use OAuth state (stored as its SHA-256)
-- and the sealed PKCE verifier. Tenant, user and server come from the login.
CREATE TABLE mcpidp_oauth_state (
    state_hash    TEXT PRIMARY KEY,
    login_id      TEXT NOT NULL REFERENCES mcpidp_oauth_login (id) ON DELETE CASCADE,
    code_verifier TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER
);

CREATE INDEX mcpidp_oauth_state_login ON mcpidp_oauth_state (login_id);
CREATE INDEX mcpidp_oauth_state_expires ON mcpidp_oauth_state (expires_at);

-- A user's tokens for one MCP server. The row lock on it is what keeps one
-- refresh per connection across processes.
CREATE TABLE mcpidp_oauth_connection (
    id                         TEXT PRIMARY KEY,
    tenant_id                  TEXT NOT NULL REFERENCES mcpidp_tenant (id) ON DELETE CASCADE,
    user_id                    TEXT NOT NULL,
    server_url                 TEXT NOT NULL,
    resource                   TEXT NOT NULL,
    issuer                     TEXT NOT NULL,
    authorization_endpoint     TEXT NOT NULL,
    token_endpoint             TEXT NOT NULL,
    revocation_endpoint        TEXT NOT NULL DEFAULT '',
    iss_parameter_supported    BOOLEAN NOT NULL DEFAULT FALSE,
    client_id                  TEXT NOT NULL,
    token_endpoint_auth_method TEXT NOT NULL,
    scopes                     TEXT NOT NULL DEFAULT '',
    status                     TEXT NOT NULL,
    access_token               TEXT NOT NULL DEFAULT '',
    refresh_token              TEXT NOT NULL DEFAULT '',
    token_type                 TEXT NOT NULL DEFAULT '',
    expires_at                 INTEGER,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL,
    last_used_at               INTEGER,
    refreshed_at               INTEGER,
    UNIQUE (tenant_id, user_id, server_url)
);

CREATE INDEX mcpidp_oauth_connection_expires ON mcpidp_oauth_connection (status, expires_at);
