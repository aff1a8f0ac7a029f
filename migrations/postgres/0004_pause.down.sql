DROP TABLE mcpidp_task_wait;
ALTER TABLE mcpidp_task DROP COLUMN continuation_job_id;
ALTER TABLE mcpidp_task DROP COLUMN run_job_id;
