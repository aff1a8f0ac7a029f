package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names defined by Standard Webhooks.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every signing secret, so a secret is recognisable
// wherever it turns up.
const SecretPrefix = "whsec_"

// secretSize is the number of random bytes in a new secret; the
// specification asks for 24 to 64.
const secretSize = 32

// TimestampTolerance is how far webhook-timestamp may be from the
// verifier's clock, in either direction, to limit replays.
const TimestampTolerance = 5 * time.Minute

var (
	// ErrMissingHeaders means a webhook-id, webhook-timestamp or
	// webhook-signature header is absent or empty.
	ErrMissingHeaders = errors.New("missing webhook signature headers")

	// ErrInvalidSignature means no v1 signature matched the message.
	ErrInvalidSignature = errors.New("no matching webhook signature")

	// ErrTimestamp means webhook-timestamp is malformed or outside
	// TimestampTolerance.
	ErrTimestamp = errors.New("webhook timestamp is invalid or outside the tolerance")
)

// NewSecret returns a new random signing secret, "whsec_" followed by the
// base64 of 32 random bytes.
func NewSecret() (string, error) {
	key := make([]byte, secretSize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("error generating webhook secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// Sign returns the webhook-signature value "v1,<base64 signature>" for a
// message: the HMAC-SHA256, keyed by the base64-decoded part of secret after
// "whsec_" (the prefix is optional, as in the reference libraries), of
// "<msgID>.<unix seconds>.<body>".
func Sign(secret, msgID string, timestamp time.Time, body []byte) (string, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return "", err
	}
	if msgID == "" {
		return "", errors.New("webhook message id is required")
	}
	if strings.ContainsAny(msgID, "\r\n") {
		return "", fmt.Errorf("webhook message id %q must not contain line breaks", msgID)
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, msgID, timestamp.Unix(), body)), nil
}

// SignedHeaders returns the three Standard Webhooks headers for a message.
// Deliveries retry with the same msgID so receivers can de-duplicate, and
// with a fresh timestamp so they pass the receiver's tolerance.
func SignedHeaders(secret, msgID string, timestamp time.Time, body []byte) (http.Header, error) {
	signature, err := Sign(secret, msgID, timestamp, body)
	if err != nil {
		return nil, err
	}
	h := make(http.Header, 3)
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(timestamp.Unix(), 10))
	h.Set(HeaderSignature, signature)
	return h, nil
}

// Verify checks a received webhook: the headers are present, the timestamp
// is within TimestampTolerance of now, and at least one of the
// space-separated "v1,<signature>" entries of webhook-signature matches
// (several are sent while a secret is being rotated; other versions are
// ignored). Signatures are compared in constant time. Errors wrap
// ErrMissingHeaders, ErrTimestamp or ErrInvalidSignature; an unusable secret
// gives an error wrapping none of them.
func Verify(secret string, header http.Header, body []byte, now time.Time) error {
	key, err := decodeSecret(secret)
	if err != nil {
		return err
	}
	msgID, timestampStr, signatures := header.Get(HeaderID), header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	var missing []string
	for _, h := range [...]struct{ name, value string }{
		{HeaderID, msgID}, {HeaderTimestamp, timestampStr}, {HeaderSignature, signatures},
	} {
		if h.value == "" {
			missing = append(missing, h.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(missing, ", "), ErrMissingHeaders)
	}

	timestamp, err := strconv.ParseInt(timestampStr, 10, 64)
	if err != nil {
		return fmt.Errorf("%s %q is not a unix timestamp: %w", HeaderTimestamp, timestampStr, ErrTimestamp)
	}
	age := now.Sub(time.Unix(timestamp, 0))
	if age > TimestampTolerance {
		return fmt.Errorf("message is %s old: %w", age.Round(time.Second), ErrTimestamp)
	}
	if age < -TimestampTolerance {
		return fmt.Errorf("message is %s in the future: %w", (-age).Round(time.Second), ErrTimestamp)
	}

	expected := mac(key, msgID, timestamp, body)
	for _, entry := range strings.Fields(signatures) {
		version, encoded, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			continue
		}
		if hmac.Equal(got, expected) {
			return nil
		}
	}
	return ErrInvalidSignature
}

func mac(key []byte, msgID string, timestamp int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msgID))
	h.Write([]byte("."))
	h.Write([]byte(strconv.FormatInt(timestamp, 10)))
	h.Write([]byte("."))
	h.Write(body)
	return h.Sum(nil)
}

func decodeSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("webhook secret is not %s followed by base64: %w", SecretPrefix, err)
	}
	if len(key) == 0 {
		return nil, errors.New("webhook secret is empty")
	}
	return key, nil
}
