-- One row per input an MCP server asked a task's user for (elicitation).
-- Form mode: the run's job holds the tools/call open while the row is
-- pending; the answer (POST /v1/tasks/{id}/inputs/{input_id} or the HTML
-- form) is written here by whichever process receives it, and the waiting
-- job polls the row. status: pending | answered | expired. A row is answered
-- once (a guarded update), so two answers cannot both win.
CREATE TABLE mcpidp_task_input (
    id               TEXT PRIMARY KEY,
    task_id          TEXT NOT NULL REFERENCES mcpidp_task (id) ON DELETE CASCADE,
    server_url       TEXT NOT NULL,
    mode             TEXT NOT NULL,
    message          TEXT NOT NULL,
    requested_schema TEXT,
    url              TEXT,
    status           TEXT NOT NULL,
    action           TEXT,
    content          TEXT,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    answered_at      BIGINT
);

CREATE INDEX mcpidp_task_input_task ON mcpidp_task_input (task_id, status);

-- The pending inputs as the task object shows them (pending_inputs), like
-- authorization_required for logins.
ALTER TABLE mcpidp_task ADD COLUMN pending_inputs TEXT;
