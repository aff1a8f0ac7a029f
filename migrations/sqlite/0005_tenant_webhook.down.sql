ALTER TABLE mcpidp_tenant DROP COLUMN webhook_url;
