DROP TABLE mcpidp_webhook_attempt;
DROP TABLE mcpidp_webhook_delivery;
