-- run_job_id is the River job that owns the running segment: a second job
-- for the same segment cannot start it. continuation_job_id is the parked
-- (pending) job staged when a task pauses for a login.
ALTER TABLE mcpidp_task ADD COLUMN run_job_id BIGINT;
ALTER TABLE mcpidp_task ADD COLUMN continuation_job_id BIGINT;

-- One row per MCP server a paused task waits on. server_url is canonical
-- (RFC 8707), as in mcpidp_oauth_connection, so a callback finds it.
CREATE TABLE mcpidp_task_wait (
    task_id    TEXT NOT NULL REFERENCES mcpidp_task (id) ON DELETE CASCADE,
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    server_url TEXT NOT NULL,
    login_id   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (task_id, server_url)
);

CREATE INDEX mcpidp_task_wait_user ON mcpidp_task_wait (tenant_id, user_id, server_url);
