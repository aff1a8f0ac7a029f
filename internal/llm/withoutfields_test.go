package llm_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm"
)

func TestWithoutFields(t *testing.T) {
	t.Parallel()
	out, err := llm.WithoutFields([]byte(`{"user":"u", "model":"m","x":[1, 2],"user":"again","max_steps":3}`), "user", "max_steps", "absent")
	require.NoError(t, err)
	require.Equal(t, `{"model":"m","x":[1, 2]}`, string(out))

	_, err = llm.WithoutFields([]byte(`[1]`), "user")
	require.Error(t, err)
}
