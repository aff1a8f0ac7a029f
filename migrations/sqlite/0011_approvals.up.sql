-- Tool approval: a task stops before a tools/call its require_approval
-- policy holds back, in status awaiting_approval. pending_approvals is the
-- JSON list shown on the task object while it waits (the approve links are
-- derived from the result token, never stored).
ALTER TABLE mcpidp_task ADD COLUMN pending_approvals TEXT;

-- One row per tool call held back for a person's decision. token_hash is
-- the SHA-256 of the single-use approve link's token; decided_at is set
-- once, by the guarded update that approves or denies (exactly once).
-- turn (the step index of the model turn that asked) and tool_call_id name
-- the call: models may reuse call ids across turns.
CREATE TABLE mcpidp_task_approval (
    id           TEXT PRIMARY KEY,
    task_id      TEXT NOT NULL REFERENCES mcpidp_task (id) ON DELETE CASCADE,
    segment      INTEGER NOT NULL,
    turn         INTEGER NOT NULL,
    tool_call_id TEXT NOT NULL,
    server_url   TEXT NOT NULL,
    tool         TEXT NOT NULL,
    arguments    TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    decided_at   INTEGER,
    approved     BOOLEAN NOT NULL DEFAULT FALSE,
    reason       TEXT NOT NULL DEFAULT '',
    UNIQUE (task_id, turn, tool_call_id)
);
