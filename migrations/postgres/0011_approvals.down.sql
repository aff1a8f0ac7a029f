DROP TABLE mcpidp_task_approval;
ALTER TABLE mcpidp_task DROP COLUMN pending_approvals;
