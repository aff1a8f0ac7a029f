package webhooks_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/apisurface"
)

// TestPublicAPI keeps package webhooks what a receiver outside this module
// can use: no exported declaration mentions an internal package, and every
// exported name is one chosen to be public (delivery lives in
// internal/delivery). Adding an export means adding it here on purpose.
func TestPublicAPI(t *testing.T) {
	t.Parallel()

	s, err := apisurface.Read(".")
	require.NoError(t, err)
	require.Empty(t, s.Leaks, "exported declarations mention internal packages")
	require.Equal(t, []string{
		"ErrInvalidSignature",
		"ErrMissingHeaders",
		"ErrTimestamp",
		"HeaderID",
		"HeaderSignature",
		"HeaderTimestamp",
		"NewSecret",
		"SecretPrefix",
		"Sign",
		"SignedHeaders",
		"TimestampTolerance",
		"Verify",
	}, s.Names)
}
