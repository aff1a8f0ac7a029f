ALTER TABLE mcpidp_oauth_state DROP COLUMN browser_hash;
