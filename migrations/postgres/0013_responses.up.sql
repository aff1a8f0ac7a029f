-- One row per stored response of POST /v1/responses (store, the default).
-- request holds what previous_response_id continues from: the whole
-- conversation as Responses input items (this request's and every earlier
-- one's in the chain) and the request's public fields; caller headers and
-- keys are never kept here. output holds the output items of a response
-- answered in the request. A background response (background true) is also
-- a task with the same id: its status, steps and result live there, and
-- output stays empty.
CREATE TABLE mcpidp_response (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES mcpidp_tenant (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL,
    background   BOOLEAN NOT NULL,
    status       TEXT NOT NULL,
    model        TEXT NOT NULL,
    request      TEXT NOT NULL,
    output       TEXT,
    usage        TEXT,
    error        TEXT,
    created_at   BIGINT NOT NULL,
    completed_at BIGINT
);

CREATE INDEX mcpidp_response_tenant_user ON mcpidp_response (tenant_id, user_id, id);
