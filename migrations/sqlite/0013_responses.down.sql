DROP TABLE mcpidp_response;
