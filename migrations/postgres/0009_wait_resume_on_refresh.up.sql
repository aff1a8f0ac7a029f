-- A task that paused because refreshing its user's token failed (the
-- authorization server was unavailable), rather than because the MCP server
-- refused a good token, can go on as soon as any later refresh of that
-- connection stores a new access token: no login is needed.
ALTER TABLE mcpidp_task_wait ADD COLUMN resume_on_refresh BOOLEAN NOT NULL DEFAULT FALSE;
