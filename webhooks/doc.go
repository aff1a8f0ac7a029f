// Package webhooks owns outgoing webhooks: signing and verifying them per
// the Standard Webhooks specification (https://www.standardwebhooks.com),
// with headers webhook-id, webhook-timestamp and
// "webhook-signature: v1,<base64 HMAC-SHA256>" keyed by a tenant's whsec_
// secret, and delivering them with retries so that receivers can
// de-duplicate on webhook-id.
package webhooks
