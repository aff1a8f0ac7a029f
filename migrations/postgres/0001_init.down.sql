DROP TABLE mcpidp_task_step;
DROP TABLE mcpidp_task;
DROP TABLE mcpidp_api_key;
DROP TABLE mcpidp_tenant;
