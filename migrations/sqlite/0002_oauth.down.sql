DROP TABLE mcpidp_oauth_connection;
DROP TABLE mcpidp_oauth_state;
DROP TABLE mcpidp_oauth_login;
DROP TABLE mcpidp_oauth_client;
