package secretbox_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/secretbox"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	encoded, err := secretbox.GenerateKey()
	require.NoError(t, err)
	key, err := base64.StdEncoding.DecodeString(encoded)
	require.NoError(t, err)
	require.Len(t, key, secretbox.KeySize)
	return key
}

func TestSealOpen(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ad []byte
	}

	setup := func(t *testing.T) (*secretbox.Keyring, *testBundle) {
		t.Helper()
		keyring, err := secretbox.NewKeyring("k1", map[string][]byte{"k1": newKey(t)})
		require.NoError(t, err)
		return keyring, &testBundle{ad: []byte("oauth_token:conn_123")}
	}

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		keyring, bundle := setup(t)

		for _, plaintext := range [][]byte{[]byte("access-token-value"), {}, bytes.Repeat([]byte{0xff}, 4096)} {
			sealed, err := keyring.Seal(plaintext, bundle.ad)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(sealed, "v1.k1."), sealed)
			if len(plaintext) > 0 {
				require.NotContains(t, sealed, string(plaintext))
			}

			opened, err := keyring.Open(sealed, bundle.ad)
			require.NoError(t, err)
			require.Equal(t, len(plaintext), len(opened))
			require.True(t, bytes.Equal(plaintext, opened))
		}
	})

	t.Run("FreshNonceEachTime", func(t *testing.T) {
		t.Parallel()
		keyring, bundle := setup(t)

		a, err := keyring.Seal([]byte("same"), bundle.ad)
		require.NoError(t, err)
		b, err := keyring.Seal([]byte("same"), bundle.ad)
		require.NoError(t, err)
		require.NotEqual(t, a, b)
	})

	t.Run("WrongAssociatedData", func(t *testing.T) {
		t.Parallel()
		keyring, bundle := setup(t)

		sealed, err := keyring.Seal([]byte("secret"), bundle.ad)
		require.NoError(t, err)

		_, err = keyring.Open(sealed, []byte("oauth_token:conn_456"))
		require.ErrorIs(t, err, secretbox.ErrDecrypt)
		_, err = keyring.Open(sealed, nil)
		require.ErrorIs(t, err, secretbox.ErrDecrypt)
	})

	t.Run("Tampering", func(t *testing.T) {
		t.Parallel()
		keyring, bundle := setup(t)

		sealed, err := keyring.Seal([]byte("secret"), bundle.ad)
		require.NoError(t, err)
		prefix := "v1.k1."
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, prefix))
		require.NoError(t, err)

		// Flipping any single bit — nonce, ciphertext or tag — must fail.
		for i := range raw {
			tampered := bytes.Clone(raw)
			tampered[i] ^= 0x01
			_, err := keyring.Open(prefix+base64.RawURLEncoding.EncodeToString(tampered), bundle.ad)
			require.ErrorIs(t, err, secretbox.ErrDecrypt, "byte %d", i)
		}

		_, err = keyring.Open(prefix+base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1]), bundle.ad)
		require.ErrorIs(t, err, secretbox.ErrDecrypt)
	})

	t.Run("Malformed", func(t *testing.T) {
		t.Parallel()
		keyring, bundle := setup(t)

		for _, sealed := range []string{"", "plaintext", "v2.k1.AAAA", "v1.", "v1..AAAA", "v1.k1", "v1.k1.not*base64", "v1.k1.AAAA"} {
			_, err := keyring.Open(sealed, bundle.ad)
			require.ErrorIs(t, err, secretbox.ErrDecrypt, "%q", sealed)
		}
	})

	t.Run("UnknownKey", func(t *testing.T) {
		t.Parallel()
		keyring, bundle := setup(t)
		other, err := secretbox.NewKeyring("k2", map[string][]byte{"k2": newKey(t)})
		require.NoError(t, err)

		sealed, err := other.Seal([]byte("secret"), bundle.ad)
		require.NoError(t, err)

		_, err = keyring.Open(sealed, bundle.ad)
		require.ErrorIs(t, err, secretbox.ErrUnknownKey)
		require.ErrorContains(t, err, `"k2"`)
	})

	t.Run("SameIDDifferentKey", func(t *testing.T) {
		t.Parallel()
		keyring, bundle := setup(t)
		impostor, err := secretbox.NewKeyring("k1", map[string][]byte{"k1": newKey(t)})
		require.NoError(t, err)

		sealed, err := impostor.Seal([]byte("secret"), bundle.ad)
		require.NoError(t, err)

		_, err = keyring.Open(sealed, bundle.ad)
		require.ErrorIs(t, err, secretbox.ErrDecrypt)
	})
}

func TestRotation(t *testing.T) {
	t.Parallel()

	oldKey, newKeyBytes := newKey(t), newKey(t)
	ad := []byte("client_secret:as_1")

	before, err := secretbox.NewKeyring("old", map[string][]byte{"old": oldKey})
	require.NoError(t, err)
	sealedBefore, err := before.Seal([]byte("sealed with old"), ad)
	require.NoError(t, err)

	// The operator adds a new primary key and keeps the old one.
	env := "new:" + base64.StdEncoding.EncodeToString(newKeyBytes) + ", old:" + base64.StdEncoding.EncodeToString(oldKey)
	after, err := secretbox.ParseKeyring(env)
	require.NoError(t, err)
	require.Equal(t, "new", after.PrimaryID())

	opened, err := after.Open(sealedBefore, ad)
	require.NoError(t, err)
	require.Equal(t, "sealed with old", string(opened))

	sealedAfter, err := after.Seal([]byte("sealed with new"), ad)
	require.NoError(t, err)
	id, err := secretbox.KeyID(sealedAfter)
	require.NoError(t, err)
	require.Equal(t, "new", id)
	id, err = secretbox.KeyID(sealedBefore)
	require.NoError(t, err)
	require.Equal(t, "old", id)

	// The old keyring cannot open what the new primary sealed.
	_, err = before.Open(sealedAfter, ad)
	require.ErrorIs(t, err, secretbox.ErrUnknownKey)
}

func TestParseKeyring(t *testing.T) {
	t.Parallel()

	key := newKey(t)
	std := base64.StdEncoding.EncodeToString(key)

	t.Run("SingleKey", func(t *testing.T) {
		t.Parallel()
		for _, s := range []string{
			std,
			"  " + std + "\n",
			base64.RawStdEncoding.EncodeToString(key),
			base64.URLEncoding.EncodeToString(key),
			base64.RawURLEncoding.EncodeToString(key),
		} {
			keyring, err := secretbox.ParseKeyring(s)
			require.NoError(t, err, s)
			require.Equal(t, "k1", keyring.PrimaryID())

			// It is the same key: a value sealed by a keyring built
			// directly opens.
			direct, err := secretbox.NewKeyring("k1", map[string][]byte{"k1": key})
			require.NoError(t, err)
			sealed, err := direct.Seal([]byte("x"), nil)
			require.NoError(t, err)
			_, err = keyring.Open(sealed, nil)
			require.NoError(t, err)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		short := base64.StdEncoding.EncodeToString(key[:16])
		for _, tt := range []struct {
			in      string
			wantErr string
		}{
			{"", "encryption key is empty"},
			{"   ", "encryption key is empty"},
			{short, "encryption key k1 is 16 bytes, want 32"},
			{"k1:" + std + ",k2:" + short, "encryption key k2 is 16 bytes, want 32"},
			{"not base64!", "encryption key is not valid base64"},
			{"k1:" + std + ",k2:***", "encryption key k2 is not valid base64"},
			{"k1:" + std + "," + std, "encryption key entry 2 has no id"},
			{"k1:" + std + ",k1:" + std, "encryption key id k1 appears twice"},
			{":" + std, `encryption key id "" must be 1 to 32 characters`},
			{"k.1:" + std, `encryption key id "k.1" may contain only letters, digits`},
		} {
			_, err := secretbox.ParseKeyring(tt.in)
			require.ErrorContains(t, err, tt.wantErr, tt.in)
			require.NotContains(t, err.Error(), std, "error leaks key material")
		}
	})
}

func TestNewKeyring(t *testing.T) {
	t.Parallel()

	_, err := secretbox.NewKeyring("k1", nil)
	require.ErrorContains(t, err, "at least one key")

	_, err = secretbox.NewKeyring("k2", map[string][]byte{"k1": newKey(t)})
	require.ErrorContains(t, err, `primary encryption key "k2" is not among the keys`)

	_, err = secretbox.NewKeyring("k1", map[string][]byte{"k1": make([]byte, 31)})
	require.ErrorContains(t, err, "encryption key k1 is 31 bytes, want 32")

	// The keyring copies the key: zeroing the caller's slice changes nothing.
	key := newKey(t)
	keyring, err := secretbox.NewKeyring("k1", map[string][]byte{"k1": key})
	require.NoError(t, err)
	sealed, err := keyring.Seal([]byte("x"), nil)
	require.NoError(t, err)
	clear(key)
	_, err = keyring.Open(sealed, nil)
	require.NoError(t, err)
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	t.Parallel()

	t.Run("CreatesThenRereads", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "mcpidp.key")

		first, err := secretbox.LoadOrCreateKeyFile(path)
		require.NoError(t, err)

		info, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

		sealed, err := first.Seal([]byte("survives a restart"), nil)
		require.NoError(t, err)

		second, err := secretbox.LoadOrCreateKeyFile(path)
		require.NoError(t, err)
		opened, err := second.Open(sealed, nil)
		require.NoError(t, err)
		require.Equal(t, "survives a restart", string(opened))

		// Only the key file is left behind, no temporary files.
		entries, err := os.ReadDir(filepath.Dir(path))
		require.NoError(t, err)
		require.Len(t, entries, 1)
	})

	t.Run("ReadsExisting", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "mcpidp.key")
		key := newKey(t)
		require.NoError(t, os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600))

		keyring, err := secretbox.LoadOrCreateKeyFile(path)
		require.NoError(t, err)

		direct, err := secretbox.NewKeyring("k1", map[string][]byte{"k1": key})
		require.NoError(t, err)
		sealed, err := direct.Seal([]byte("x"), nil)
		require.NoError(t, err)
		_, err = keyring.Open(sealed, nil)
		require.NoError(t, err)
	})

	t.Run("InvalidFile", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "mcpidp.key")
		require.NoError(t, os.WriteFile(path, []byte("\n"), 0o600))

		_, err := secretbox.LoadOrCreateKeyFile(path)
		require.ErrorContains(t, err, "encryption key is empty")
		require.ErrorContains(t, err, path)
	})

	t.Run("ConcurrentCreatorsAgree", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "mcpidp.key")

		const n = 8
		keyrings := make([]*secretbox.Keyring, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { keyrings[i], errs[i] = secretbox.LoadOrCreateKeyFile(path) })
		}
		wg.Wait()

		require.NoError(t, errs[0])
		sealed, err := keyrings[0].Seal([]byte("shared"), nil)
		require.NoError(t, err)
		for i := range n {
			require.NoError(t, errs[i])
			opened, err := keyrings[i].Open(sealed, nil)
			require.NoError(t, err, "keyring %d got a different key", i)
			require.Equal(t, "shared", string(opened))
		}
	})
}

// TestLoad pins the one key rule the service, mcpproxy and the conformance
// client share: a set key wins, SQLite falls back to a key file named after
// the database, PostgreSQL needs the key.
func TestLoad(t *testing.T) {
	t.Parallel()

	t.Run("KeyWins", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		key := newKey(t)

		keyring, err := secretbox.Load(base64.StdEncoding.EncodeToString(key), filepath.Join(dir, "mcpidp.db"))
		require.NoError(t, err)

		direct, err := secretbox.NewKeyring(secretbox.DefaultKeyID, map[string][]byte{secretbox.DefaultKeyID: key})
		require.NoError(t, err)
		sealed, err := direct.Seal([]byte("x"), nil)
		require.NoError(t, err)
		_, err = keyring.Open(sealed, nil)
		require.NoError(t, err)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Empty(t, entries, "no key file is written when a key is set")
	})

	t.Run("SQLiteKeyFileBesideDatabase", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		db := filepath.Join(dir, "mcpidp.db")
		require.Equal(t, filepath.Join(dir, "mcpidp.key"), secretbox.KeyFilePath(db))

		first, err := secretbox.Load("", db)
		require.NoError(t, err)
		info, err := os.Stat(filepath.Join(dir, "mcpidp.key"))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

		sealed, err := first.Seal([]byte("survives a restart"), nil)
		require.NoError(t, err)
		second, err := secretbox.Load("", db)
		require.NoError(t, err)
		_, err = second.Open(sealed, nil)
		require.NoError(t, err)
	})

	t.Run("PostgresNeedsKey", func(t *testing.T) {
		t.Parallel()
		_, err := secretbox.Load("", "")
		require.ErrorContains(t, err, "MCPIDP_ENCRYPTION_KEY is required with PostgreSQL")
	})

	t.Run("InvalidKey", func(t *testing.T) {
		t.Parallel()
		_, err := secretbox.Load("not base64!", "")
		require.ErrorContains(t, err, "invalid MCPIDP_ENCRYPTION_KEY")
	})
}
