-- The tenant's default webhook URL: where connection events go, and task
-- events of tasks that name no webhook of their own.
ALTER TABLE mcpidp_tenant ADD COLUMN webhook_url TEXT NOT NULL DEFAULT '';
