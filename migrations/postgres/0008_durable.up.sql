-- A task whose model call failed with a transient error (429, 5xx, timeout,
-- connection error) waits for its next try with no worker held (its River
-- job is snoozed). model_retry_since is the first failure of the current
-- streak, so the limit (MCPIDP_MODEL_RETRY_FOR) holds across restarts;
-- model_retries counts the streak's failures for the backoff; retrying_at is
-- when the next try is due, shown on the task object. A model answer clears
-- all three.
ALTER TABLE mcpidp_task ADD COLUMN model_retry_since BIGINT;
ALTER TABLE mcpidp_task ADD COLUMN model_retries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mcpidp_task ADD COLUMN retrying_at BIGINT;

-- One row per tool call of a task, committed before its tools/call is sent.
-- idx is the step index its result will be recorded at. A row with no step
-- at idx after a crash is a call that was in flight: it may or may not have
-- run, so it is sent again only to tools that declare themselves read-only
-- or idempotent.
CREATE TABLE mcpidp_tool_call (
    task_id      TEXT NOT NULL REFERENCES mcpidp_task (id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    tool_call_id TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    PRIMARY KEY (task_id, idx)
);
