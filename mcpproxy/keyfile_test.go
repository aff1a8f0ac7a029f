package mcpproxy_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/mcpproxy"
)

// Without EncryptionKey, the proxy keeps its SQLite key where the server
// keeps its own (secretbox.Load): beside the database, the extension
// replaced by ".key", readable by its owner only.
func TestKeyFileBesideDatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	setup(t, func(o *mcpproxy.Options) { o.DatabaseURL = "sqlite:" + filepath.Join(dir, "tokens.db") })

	info, err := os.Stat(filepath.Join(dir, "tokens.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}
