// Package secretbox owns encryption at rest: OAuth tokens, client secrets,
// upstream API keys and webhook secrets are sealed with AES-256-GCM before
// they reach the database. Every sealed value names the key that sealed it,
// so keys can be rotated by adding a new primary key while older ones stay
// in the keyring to open what they sealed.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length in bytes of every key (AES-256).
const KeySize = 32

// DefaultKeyID is the id given to a key configured without one.
const DefaultKeyID = "k1"

// maxKeyIDLength bounds key ids, which are repeated in every sealed value.
const maxKeyIDLength = 32

// sealedVersion prefixes every sealed value so the format can change later.
const sealedVersion = "v1"

var (
	// ErrUnknownKey means a value was sealed with a key id that is not in
	// the keyring, typically because a retired key was removed too early.
	ErrUnknownKey = errors.New("sealed with a key that is not in the keyring")

	// ErrDecrypt means a value could not be opened: it is malformed, was
	// tampered with, or the associated data does not match.
	ErrDecrypt = errors.New("sealed value could not be decrypted")
)

// Keyring holds the keys that can open sealed values and the primary key
// that seals new ones. It is safe for concurrent use.
type Keyring struct {
	primaryID string
	aeads     map[string]cipher.AEAD
}

// NewKeyring returns a keyring that seals with keys[primaryID] and opens
// with any key in keys. Each key must be exactly KeySize bytes; ids are 1 to
// 32 letters, digits, '-' or '_'. The key bytes are copied.
func NewKeyring(primaryID string, keys map[string][]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("encryption keyring needs at least one key")
	}
	if _, ok := keys[primaryID]; !ok {
		return nil, fmt.Errorf("primary encryption key %q is not among the keys", primaryID)
	}
	k := &Keyring{primaryID: primaryID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if err := validateKeyID(id); err != nil {
			return nil, err
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("encryption key %s is %d bytes, want %d", id, len(key), KeySize)
		}
		block, err := aes.NewCipher(key) // copies the key into its schedule
		if err != nil {
			return nil, fmt.Errorf("encryption key %s: %w", id, err)
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("encryption key %s: %w", id, err)
		}
		k.aeads[id] = aead
	}
	return k, nil
}

// ParseKeyring parses the MCPIDP_ENCRYPTION_KEY format: either a single
// base64 key (given id "k1"), or a comma-separated list "id1:base64,
// id2:base64" whose first entry is the primary key. To rotate, put a new key
// first and keep the old ones after it until everything sealed with them
// has been re-sealed or has expired. Standard and URL-safe base64, with or
// without padding, are accepted.
func ParseKeyring(s string) (*Keyring, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("encryption key is empty")
	}
	if !strings.Contains(s, ":") {
		key, err := decodeKey(s)
		if err != nil {
			return nil, fmt.Errorf("encryption key is not valid base64: %w", err)
		}
		return NewKeyring(DefaultKeyID, map[string][]byte{DefaultKeyID: key})
	}

	var primaryID string
	keys := make(map[string][]byte)
	for i, entry := range strings.Split(s, ",") {
		id, encoded, ok := strings.Cut(strings.TrimSpace(entry), ":")
		if !ok {
			return nil, fmt.Errorf("encryption key entry %d has no id; use id:base64key", i+1)
		}
		id, encoded = strings.TrimSpace(id), strings.TrimSpace(encoded)
		if err := validateKeyID(id); err != nil {
			return nil, err
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("encryption key id %s appears twice", id)
		}
		key, err := decodeKey(encoded)
		if err != nil {
			return nil, fmt.Errorf("encryption key %s is not valid base64: %w", id, err)
		}
		if i == 0 {
			primaryID = id
		}
		keys[id] = key
	}
	return NewKeyring(primaryID, keys)
}

// PrimaryID returns the id of the key that seals new values. A value whose
// KeyID differs is due for re-sealing.
func (k *Keyring) PrimaryID() string { return k.primaryID }

// Seal encrypts plaintext with the primary key and a fresh random nonce.
// associatedData is authenticated but not stored: pass something that binds
// the value to its place (say "oauth_token:<connection id>") so a sealed
// value copied into another row does not open. The result is
// "v1.<key id>.<base64url(nonce||ciphertext||tag)>", safe for text columns.
func (k *Keyring) Seal(plaintext, associatedData []byte) (string, error) {
	sealed := k.aeads[k.primaryID].Seal(nil, nil, plaintext, associatedData)
	return sealedVersion + "." + k.primaryID + "." + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Open decrypts a value made by Seal with any key in the keyring, given the
// same associated data. Errors wrap ErrUnknownKey or ErrDecrypt.
func (k *Keyring) Open(sealed string, associatedData []byte) ([]byte, error) {
	id, payload, err := splitSealed(sealed)
	if err != nil {
		return nil, err
	}
	aead, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("key id %q: %w", id, ErrUnknownKey)
	}
	data, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || len(data) < aead.Overhead() {
		return nil, fmt.Errorf("sealed value is malformed: %w", ErrDecrypt)
	}
	plaintext, err := aead.Open(nil, nil, data, associatedData)
	if err != nil {
		return nil, fmt.Errorf("with key %s: %w", id, ErrDecrypt)
	}
	return plaintext, nil
}

// KeyID returns the id of the key that sealed a value, without opening it.
func KeyID(sealed string) (string, error) {
	id, _, err := splitSealed(sealed)
	return id, err
}

// GenerateKey returns a new random key, base64-encoded, in the form
// ParseKeyring and LoadOrCreateKeyFile accept.
func GenerateKey() (string, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("error generating encryption key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// Load returns a deployment's keyring, by the one rule every entry point
// follows: key (the MCPIDP_ENCRYPTION_KEY format) when it is set; else,
// for a SQLite database at sqlitePath, the key file beside it (KeyFilePath),
// generated on first start; else (PostgreSQL, sqlitePath empty) an error,
// because a key generated on one host would be missing on the next and
// everything sealed with it lost.
func Load(key, sqlitePath string) (*Keyring, error) {
	if key != "" {
		k, err := ParseKeyring(key)
		if err != nil {
			return nil, fmt.Errorf("invalid MCPIDP_ENCRYPTION_KEY: %w", err)
		}
		return k, nil
	}
	if sqlitePath == "" {
		return nil, errors.New("MCPIDP_ENCRYPTION_KEY is required with PostgreSQL (generate one with: openssl rand -base64 32)")
	}
	path := KeyFilePath(sqlitePath)
	k, err := LoadOrCreateKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("error loading encryption key file %s: %w", path, err)
	}
	return k, nil
}

// KeyFilePath is where Load keeps the generated key of the SQLite database
// at dbPath: beside it, with the extension replaced by ".key"
// ("data/mcpidp.db" keeps its key in "data/mcpidp.key").
func KeyFilePath(dbPath string) string {
	return strings.TrimSuffix(dbPath, filepath.Ext(dbPath)) + ".key"
}

// LoadOrCreateKeyFile returns the keyring stored in the file at path (in the
// ParseKeyring format). If the file does not exist it is created, readable
// only by its owner, holding a new random key. Creation is atomic: the key
// is written to a temporary file that is then hard-linked into place, which
// fails if path already exists, so when two processes race, exactly one key
// wins and the loser reads it; nobody ever reads a half-written file. The
// directory must exist.
func LoadOrCreateKeyFile(path string) (*Keyring, error) {
	keyring, err := readKeyFile(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return keyring, err
	}

	key, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	// CreateTemp opens with O_EXCL and mode 0600.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("error creating encryption key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(key + "\n"); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("error writing encryption key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("error writing encryption key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("error writing encryption key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("error creating encryption key file: %w", err)
	}
	// Read back whichever key won, ours or a concurrent process's.
	return readKeyFile(path)
}

func readKeyFile(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("error reading encryption key file: %w", err)
	}
	keyring, err := ParseKeyring(string(data))
	if err != nil {
		return nil, fmt.Errorf("encryption key file %s: %w", path, err)
	}
	return keyring, nil
}

func splitSealed(sealed string) (id, payload string, err error) {
	version, rest, ok := strings.Cut(sealed, ".")
	if !ok || version != sealedVersion {
		return "", "", fmt.Errorf("sealed value does not start with %q: %w", sealedVersion+".", ErrDecrypt)
	}
	id, payload, ok = strings.Cut(rest, ".")
	if !ok || id == "" {
		return "", "", fmt.Errorf("sealed value has no key id: %w", ErrDecrypt)
	}
	return id, payload, nil
}

func validateKeyID(id string) error {
	if id == "" || len(id) > maxKeyIDLength {
		return fmt.Errorf("encryption key id %q must be 1 to %d characters", id, maxKeyIDLength)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("encryption key id %q may contain only letters, digits, '-' and '_'", id)
		}
	}
	return nil
}

// decodeKey accepts the base64 variants people paste: standard or URL-safe,
// padded or not.
func decodeKey(s string) ([]byte, error) {
	var firstErr error
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		key, err := enc.DecodeString(s)
		if err == nil {
			return key, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}
