-- Outgoing webhooks (package webhooks). A delivery is one message to one URL:
-- its body is frozen when the state change it announces commits, and its
-- webhook_id (the Standard Webhooks message id) is the same on every attempt
-- so receivers can de-duplicate. A delivery of a task goes when the task is
-- deleted; one without a task (connection events) is removed by
-- DeleteFinishedWebhookDeliveries.
CREATE TABLE mcpidp_webhook_delivery (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES mcpidp_tenant (id) ON DELETE CASCADE,
    task_id         TEXT REFERENCES mcpidp_task (id) ON DELETE CASCADE,
    type            TEXT NOT NULL,
    url             TEXT NOT NULL,
    webhook_id      TEXT NOT NULL UNIQUE,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempt_count   INTEGER NOT NULL DEFAULT 0,
    -- The earliest time of the next attempt (backoff or the receiver's
    -- Retry-After); NULL once the delivery has ended.
    next_attempt_at BIGINT,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    completed_at    BIGINT
);

CREATE INDEX mcpidp_webhook_delivery_task ON mcpidp_webhook_delivery (task_id, id) WHERE task_id IS NOT NULL;
CREATE INDEX mcpidp_webhook_delivery_tenant ON mcpidp_webhook_delivery (tenant_id, id);
CREATE INDEX mcpidp_webhook_delivery_completed ON mcpidp_webhook_delivery (completed_at) WHERE completed_at IS NOT NULL;

-- One HTTP attempt of a delivery. status_code is NULL when no response came
-- (network error, timeout, blocked address); error never holds a secret;
-- response_body is at most 1 KiB of what the receiver answered.
CREATE TABLE mcpidp_webhook_attempt (
    delivery_id   TEXT NOT NULL REFERENCES mcpidp_webhook_delivery (id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    started_at    BIGINT NOT NULL,
    status_code   INTEGER,
    latency_ms    BIGINT NOT NULL,
    error         TEXT NOT NULL DEFAULT '',
    response_body TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, attempt)
);
