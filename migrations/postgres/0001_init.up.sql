-- Tenants own API keys, tasks and (later) connections. Every end-user id is
-- stored next to its tenant id so that no query can reach another tenant.
CREATE TABLE mcpidp_tenant (
    id             TEXT PRIMARY KEY,
    webhook_secret TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL
);

CREATE TABLE mcpidp_api_key (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES mcpidp_tenant (id) ON DELETE CASCADE,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- Times are unix microseconds in both dialects so one code path reads them.
CREATE TABLE mcpidp_task (
    id                     TEXT PRIMARY KEY,
    tenant_id              TEXT NOT NULL REFERENCES mcpidp_tenant (id) ON DELETE CASCADE,
    user_id                TEXT NOT NULL,
    status                 TEXT NOT NULL,
    model                  TEXT NOT NULL,
    store                  BOOLEAN NOT NULL,
    request                TEXT NOT NULL,
    secrets                TEXT NOT NULL DEFAULT '',
    metadata               TEXT NOT NULL DEFAULT '{}',
    result_token           TEXT NOT NULL UNIQUE,
    idempotency_key        TEXT,
    segment                INTEGER NOT NULL DEFAULT 0,
    output                 TEXT,
    usage                  TEXT,
    error                  TEXT,
    authorization_required TEXT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    completed_at           BIGINT,
    expires_at             BIGINT
);

CREATE UNIQUE INDEX mcpidp_task_idempotency ON mcpidp_task (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX mcpidp_task_tenant_user ON mcpidp_task (tenant_id, user_id, id);
CREATE INDEX mcpidp_task_tenant_id ON mcpidp_task (tenant_id, id);
CREATE INDEX mcpidp_task_expires ON mcpidp_task (expires_at) WHERE expires_at IS NOT NULL;

-- One row per recorded step. A step is committed before the next model call,
-- which is what makes tool execution at-most-once per recorded step.
CREATE TABLE mcpidp_task_step (
    task_id    TEXT NOT NULL REFERENCES mcpidp_task (id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL,
    type       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (task_id, idx)
);
