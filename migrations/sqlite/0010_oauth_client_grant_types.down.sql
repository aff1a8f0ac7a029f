ALTER TABLE mcpidp_oauth_client DROP COLUMN grant_types;
