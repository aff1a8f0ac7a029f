// Package webhooks signs and verifies webhooks per the Standard Webhooks
// specification (https://www.standardwebhooks.com). It is what a program
// receiving mcpidp's webhooks and callbacks needs, and it depends on nothing
// of mcpidp's.
//
// Every webhook mcpidp sends is a POST with three headers: webhook-id (the
// same on every retry of a message, so receivers can de-duplicate on it),
// webhook-timestamp (Unix seconds of the attempt) and
// "webhook-signature: v1,<base64 HMAC-SHA256>", keyed by the tenant's
// whsec_ secret (printed by "mcpidp keys create", or MCPIDP_WEBHOOK_SECRET).
// A receiver checks a request with Verify before acting on it:
//
//	body, err := io.ReadAll(r.Body)
//	…
//	if err := webhooks.Verify(secret, r.Header, body, time.Now()); err != nil {
//		http.Error(w, "bad signature", http.StatusBadRequest)
//		return
//	}
//
// Verify accepts a webhook-timestamp within TimestampTolerance of the
// receiver's clock, to limit replays, and any one of several
// space-separated signatures, so a receiver keeps working while a secret is
// rotated. Sign and SignedHeaders make the same signatures, for senders and
// for tests of receivers; NewSecret makes a secret.
package webhooks
