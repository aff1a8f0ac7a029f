ALTER TABLE mcpidp_task_wait DROP COLUMN resume_on_refresh;
