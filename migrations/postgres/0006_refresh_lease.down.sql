ALTER TABLE mcpidp_oauth_connection DROP COLUMN refresh_lease_until;
ALTER TABLE mcpidp_oauth_connection DROP COLUMN refresh_lease_id;
