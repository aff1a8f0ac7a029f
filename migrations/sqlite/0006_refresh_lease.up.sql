-- A refresh lease on a connection: who is refreshing its tokens and until
-- when. The refresher takes it in a short transaction, makes the token
-- request with no transaction open, and saves the new tokens only while the
-- lease is still its own. Everyone else waits for the lease to go away (or
-- to expire, when its holder crashed) and re-reads the row.
ALTER TABLE mcpidp_oauth_connection ADD COLUMN refresh_lease_id TEXT;
ALTER TABLE mcpidp_oauth_connection ADD COLUMN refresh_lease_until INTEGER;
