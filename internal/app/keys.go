package app

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
)

// loadKeyring returns the encryption keys: MCPIDP_ENCRYPTION_KEY, or for
// SQLite a key file beside the database, generated on first start.
func loadKeyring(cfg *Config, db *store.DB) (*secretbox.Keyring, error) {
	if cfg.EncryptionKey != "" {
		k, err := secretbox.ParseKeyring(cfg.EncryptionKey)
		if err != nil {
			return nil, fmt.Errorf("invalid MCPIDP_ENCRYPTION_KEY: %w", err)
		}
		return k, nil
	}
	if db.Dialect != store.DialectSQLite {
		return nil, fmt.Errorf("MCPIDP_ENCRYPTION_KEY is required with PostgreSQL (generate one with: openssl rand -base64 32)")
	}
	path := strings.TrimSuffix(db.Path, filepath.Ext(db.Path)) + ".key"
	k, err := secretbox.LoadOrCreateKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("error loading encryption key file %s: %w", path, err)
	}
	return k, nil
}
