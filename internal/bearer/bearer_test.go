package bearer_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/bearer"
)

func TestToken(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		header string
		token  string
		ok     bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER abc", "abc", true},
		{"  Bearer   abc  ", "abc", true},
		{"Bearer", "", false},
		{"Bearer   ", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Bearerabc", "", false},
		{"abc", "", false},
		{"", "", false},
	} {
		token, ok := bearer.Token(c.header)
		require.Equal(t, c.ok, ok, "%q", c.header)
		require.Equal(t, c.token, token, "%q", c.header)
	}
}

func TestKey(t *testing.T) {
	t.Parallel()
	for header, want := range map[string]string{
		"Bearer sk-1":   "sk-1",
		"bearer sk-1":   "sk-1",
		" sk-1 ":        "sk-1",
		"sk-1":          "sk-1",
		"":              "",
		"Basic abc":     "Basic abc",
		"BEARER   sk-1": "sk-1",
	} {
		require.Equal(t, want, bearer.Key(header), "%q", header)
	}
}
