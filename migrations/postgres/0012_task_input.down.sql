ALTER TABLE mcpidp_task DROP COLUMN pending_inputs;
DROP TABLE mcpidp_task_input;
