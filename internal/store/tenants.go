package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Tenant is an application using mcpidp. Everything else hangs off it.
type Tenant struct {
	ID string
	// WebhookSecret is sealed (secretbox); empty when none is set.
	WebhookSecret string
	// WebhookURL is the default webhook URL; empty when none is set.
	WebhookURL string
	CreatedAt  time.Time
}

// UpsertTenant creates the tenant if it does not exist. A non-empty
// webhookSecret replaces the stored one.
func (s *Store) UpsertTenant(ctx context.Context, q DBTX, id, sealedWebhookSecret string) error {
	_, err := q.ExecContext(ctx, `INSERT INTO mcpidp_tenant (id, webhook_secret, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET webhook_secret = CASE WHEN excluded.webhook_secret = '' THEN mcpidp_tenant.webhook_secret ELSE excluded.webhook_secret END`,
		id, sealedWebhookSecret, micros(s.now()))
	if err != nil {
		return fmt.Errorf("error saving tenant %q: %w", id, err)
	}
	return nil
}

// GetTenant returns the tenant or ErrNotFound.
func (s *Store) GetTenant(ctx context.Context, q DBTX, id string) (*Tenant, error) {
	var t Tenant
	var created int64
	err := q.QueryRowContext(ctx, `SELECT id, webhook_secret, webhook_url, created_at FROM mcpidp_tenant WHERE id = $1`, id).
		Scan(&t.ID, &t.WebhookSecret, &t.WebhookURL, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("tenant %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error loading tenant %q: %w", id, err)
	}
	t.CreatedAt = fromMicros(created)
	return &t, nil
}

// SetTenantWebhookURL sets the tenant's default webhook URL ("" for none).
func (s *Store) SetTenantWebhookURL(ctx context.Context, q DBTX, id, url string) error {
	if _, err := q.ExecContext(ctx, `UPDATE mcpidp_tenant SET webhook_url = $2 WHERE id = $1`, id, url); err != nil {
		return fmt.Errorf("error saving webhook URL of tenant %q: %w", id, err)
	}
	return nil
}

// CreateAPIKey stores the hash of a new key for the tenant.
func (s *Store) CreateAPIKey(ctx context.Context, q DBTX, tenantID, keyHash string) (string, error) {
	id := NewID("key_", s.now())
	if _, err := q.ExecContext(ctx, `INSERT INTO mcpidp_api_key (id, tenant_id, key_hash, created_at) VALUES ($1, $2, $3, $4)`,
		id, tenantID, keyHash, micros(s.now())); err != nil {
		return "", fmt.Errorf("error saving API key: %w", err)
	}
	return id, nil
}

// TenantForKeyHash returns the tenant id owning the key, or ErrNotFound.
func (s *Store) TenantForKeyHash(ctx context.Context, q DBTX, keyHash string) (string, error) {
	var tenantID string
	err := q.QueryRowContext(ctx, `SELECT tenant_id FROM mcpidp_api_key WHERE key_hash = $1`, keyHash).Scan(&tenantID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("error looking up API key: %w", err)
	}
	return tenantID, nil
}

// HasAPIKeys says whether any API key is stored (of any tenant).
func (s *Store) HasAPIKeys(ctx context.Context, q DBTX) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM mcpidp_api_key LIMIT 1`).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("error looking for API keys: %w", err)
	}
	return true, nil
}
