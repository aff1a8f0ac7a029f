-- The grant types the authorization server says it registered a dynamic
-- client for (RFC 7591 grant_types of the registration response),
-- space-separated; empty when it did not say, which RFC 7591 reads as
-- authorization_code only. Opening a login link checks that the server still
-- knows the client with a refresh grant, and an unauthorized_client answer
-- means "unknown client" only when refresh_token was registered: otherwise
-- it just means the client may not refresh.
ALTER TABLE mcpidp_oauth_client ADD COLUMN grant_types TEXT NOT NULL DEFAULT '';
