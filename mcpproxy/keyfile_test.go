package mcpproxy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/secretbox"
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

// A store made by an earlier mcpproxy kept its key in "<database>.key": the
// proxy adopts that key rather than making a new one its tokens do not open
// with.
func TestLegacyKeyFileIsAdopted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, err := secretbox.GenerateKey()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokens.db.key"), []byte(key+"\n"), 0o600))
	setup(t, func(o *mcpproxy.Options) { o.DatabaseURL = "sqlite:" + filepath.Join(dir, "tokens.db") })

	got, err := os.ReadFile(filepath.Join(dir, "tokens.key"))
	require.NoError(t, err)
	require.Equal(t, key, strings.TrimSpace(string(got)))
	_, err = os.Stat(filepath.Join(dir, "tokens.db.key"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
