package webhooks_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/webhooks"
)

// The test vector published with the Standard Webhooks specification.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var vectorTime = time.Unix(vectorTimestamp, 0)

func vectorHeaders() http.Header {
	h := http.Header{}
	h.Set("webhook-id", vectorMsgID)
	h.Set("webhook-timestamp", strconv.Itoa(vectorTimestamp))
	h.Set("webhook-signature", vectorSignature)
	return h
}

func TestSignSpecVector(t *testing.T) {
	t.Parallel()

	sig, err := webhooks.Sign(vectorSecret, vectorMsgID, vectorTime, []byte(vectorPayload))
	require.NoError(t, err)
	require.Equal(t, vectorSignature, sig)

	// The whsec_ prefix is optional, as in the reference libraries.
	sig, err = webhooks.Sign(strings.TrimPrefix(vectorSecret, "whsec_"), vectorMsgID, vectorTime, []byte(vectorPayload))
	require.NoError(t, err)
	require.Equal(t, vectorSignature, sig)

	require.NoError(t, webhooks.Verify(vectorSecret, vectorHeaders(), []byte(vectorPayload), vectorTime.Add(time.Minute)))
}

func TestSignedHeaders(t *testing.T) {
	t.Parallel()

	h, err := webhooks.SignedHeaders(vectorSecret, vectorMsgID, vectorTime, []byte(vectorPayload))
	require.NoError(t, err)
	require.Equal(t, vectorMsgID, h.Get("webhook-id"))
	require.Equal(t, "1614265330", h.Get("webhook-timestamp"))
	require.Equal(t, vectorSignature, h.Get("webhook-signature"))
	require.Len(t, h, 3)
}

func TestNewSecret(t *testing.T) {
	t.Parallel()

	a, err := webhooks.NewSecret()
	require.NoError(t, err)
	b, err := webhooks.NewSecret()
	require.NoError(t, err)
	require.NotEqual(t, a, b)

	require.True(t, strings.HasPrefix(a, "whsec_"), a)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(key), 24)
	require.LessOrEqual(t, len(key), 64)

	// A new secret signs and verifies.
	now := time.Now()
	body := []byte(`{"type":"task.completed"}`)
	h, err := webhooks.SignedHeaders(a, "msg_1", now, body)
	require.NoError(t, err)
	require.NoError(t, webhooks.Verify(a, h, body, now))
	require.ErrorIs(t, webhooks.Verify(b, h, body, now), webhooks.ErrInvalidSignature)
}

func TestVerify(t *testing.T) {
	t.Parallel()

	body := []byte(vectorPayload)

	t.Run("TamperedBody", func(t *testing.T) {
		t.Parallel()
		err := webhooks.Verify(vectorSecret, vectorHeaders(), []byte(`{"test": 2432232315}`), vectorTime)
		require.ErrorIs(t, err, webhooks.ErrInvalidSignature)
	})

	t.Run("TamperedID", func(t *testing.T) {
		t.Parallel()
		h := vectorHeaders()
		h.Set("webhook-id", "msg_other")
		require.ErrorIs(t, webhooks.Verify(vectorSecret, h, body, vectorTime), webhooks.ErrInvalidSignature)
	})

	t.Run("TamperedTimestamp", func(t *testing.T) {
		t.Parallel()
		h := vectorHeaders()
		h.Set("webhook-timestamp", strconv.Itoa(vectorTimestamp+1))
		require.ErrorIs(t, webhooks.Verify(vectorSecret, h, body, vectorTime), webhooks.ErrInvalidSignature)
	})

	t.Run("TamperedSignature", func(t *testing.T) {
		t.Parallel()
		h := vectorHeaders()
		h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=")
		require.ErrorIs(t, webhooks.Verify(vectorSecret, h, body, vectorTime), webhooks.ErrInvalidSignature)
	})

	t.Run("WrongSecret", func(t *testing.T) {
		t.Parallel()
		other, err := webhooks.NewSecret()
		require.NoError(t, err)
		require.ErrorIs(t, webhooks.Verify(other, vectorHeaders(), body, vectorTime), webhooks.ErrInvalidSignature)
	})

	t.Run("Expired", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, webhooks.Verify(vectorSecret, vectorHeaders(), body, vectorTime.Add(webhooks.TimestampTolerance)))
		err := webhooks.Verify(vectorSecret, vectorHeaders(), body, vectorTime.Add(webhooks.TimestampTolerance+time.Second))
		require.ErrorIs(t, err, webhooks.ErrTimestamp)
		require.ErrorContains(t, err, "5m1s old")
	})

	t.Run("FromTheFuture", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, webhooks.Verify(vectorSecret, vectorHeaders(), body, vectorTime.Add(-webhooks.TimestampTolerance)))
		err := webhooks.Verify(vectorSecret, vectorHeaders(), body, vectorTime.Add(-webhooks.TimestampTolerance-time.Second))
		require.ErrorIs(t, err, webhooks.ErrTimestamp)
		require.ErrorContains(t, err, "in the future")
	})

	t.Run("MalformedTimestamp", func(t *testing.T) {
		t.Parallel()
		h := vectorHeaders()
		h.Set("webhook-timestamp", "2021-02-26T00:00:00Z")
		require.ErrorIs(t, webhooks.Verify(vectorSecret, h, body, vectorTime), webhooks.ErrTimestamp)
	})

	t.Run("MultipleSignatures", func(t *testing.T) {
		t.Parallel()
		for _, sigs := range []string{
			"v1,Zm9vYmFy " + vectorSignature,                                      // an old secret's signature first
			vectorSignature + " v1,Zm9vYmFy",                                      // or last
			"v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= " + vectorSignature, // unknown version skipped
			"v1,not-base64!! " + vectorSignature,
		} {
			h := vectorHeaders()
			h.Set("webhook-signature", sigs)
			require.NoError(t, webhooks.Verify(vectorSecret, h, body, vectorTime), sigs)
		}

		h := vectorHeaders()
		h.Set("webhook-signature", "v1,Zm9vYmFy v2,"+strings.TrimPrefix(vectorSignature, "v1,"))
		require.ErrorIs(t, webhooks.Verify(vectorSecret, h, body, vectorTime), webhooks.ErrInvalidSignature)
	})

	t.Run("MissingHeaders", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
			h := vectorHeaders()
			h.Del(name)
			err := webhooks.Verify(vectorSecret, h, body, vectorTime)
			require.ErrorIs(t, err, webhooks.ErrMissingHeaders)
			require.ErrorContains(t, err, name)
		}
		require.ErrorIs(t, webhooks.Verify(vectorSecret, http.Header{}, body, vectorTime), webhooks.ErrMissingHeaders)
	})
}

func TestSignErrors(t *testing.T) {
	t.Parallel()

	_, err := webhooks.Sign("whsec_not base64!", "msg_1", vectorTime, nil)
	require.ErrorContains(t, err, "webhook secret is not whsec_ followed by base64")

	_, err = webhooks.Sign("whsec_", "msg_1", vectorTime, nil)
	require.ErrorContains(t, err, "webhook secret is empty")

	_, err = webhooks.Sign(vectorSecret, "", vectorTime, nil)
	require.ErrorContains(t, err, "webhook message id is required")

	_, err = webhooks.SignedHeaders(vectorSecret, "msg_1\r\nX-Injected: 1", vectorTime, nil)
	require.ErrorContains(t, err, "must not contain line breaks")

	err = webhooks.Verify("whsec_***", vectorHeaders(), []byte(vectorPayload), vectorTime)
	require.ErrorContains(t, err, "webhook secret is not whsec_ followed by base64")
	require.NotErrorIs(t, err, webhooks.ErrInvalidSignature)
}
