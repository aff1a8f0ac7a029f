DROP TABLE mcpidp_tool_call;
ALTER TABLE mcpidp_task DROP COLUMN retrying_at;
ALTER TABLE mcpidp_task DROP COLUMN model_retries;
ALTER TABLE mcpidp_task DROP COLUMN model_retry_since;
