// Package delivery sends mcpidp's outgoing webhooks and callbacks: Enqueue
// records a delivery in the caller's transaction and the Deliverer, a River
// worker on its own queue, POSTs it signed per Standard Webhooks (package
// webhooks, the public half receivers use to verify) with retries, keeping
// the same webhook-id on every attempt so that receivers can de-duplicate.
package delivery

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"

	"github.com/mcpidp/mcpidp/internal/netguard"
	"github.com/mcpidp/mcpidp/internal/secretbox"
	"github.com/mcpidp/mcpidp/internal/store"
	"github.com/mcpidp/mcpidp/webhooks"
)

// Event is one message to deliver. On the wire its body is
// {"type","timestamp","data"}, timestamp in RFC 3339.
type Event struct {
	TenantID string
	// TaskID, if set, lists the delivery under GET /v1/tasks/{id}/deliveries
	// and deletes it with the task.
	TaskID string
	// Type is the event name, e.g. "task.completed".
	Type string
	// URL receives the POST. It is checked by netguard on every attempt.
	URL string
	// Data is the event's object (a task, a connection…); JSON.
	Data json.RawMessage
}

// AssociatedData is what a tenant's webhook secret is sealed with
// (secretbox) in mcpidp_tenant.webhook_secret.
const AssociatedData = "webhook-secret"

// UserAgent is sent with every delivery.
const UserAgent = "mcpidp-webhooks"

// DeliveryArgs is the River job of one delivery. It carries only the id;
// the frozen body and the attempt log live in mcpidp_webhook_delivery.
type DeliveryArgs struct {
	DeliveryID string `json:"delivery_id"`
}

// Kind implements river.JobArgs.
func (DeliveryArgs) Kind() string { return "webhook_delivery" }

// InsertOpts implements river.JobArgsWithInsertOpts. Deliveries have a
// queue of their own, so receivers that are slow or never answer hold
// webhook workers only, never the workers that run tasks.
func (DeliveryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: DefaultMaxAttempts, Queue: Queue}
}

// Queue is the River queue of webhook and callback deliveries. A worker
// process must work it (river.Config.Queues) besides the task queue.
const Queue = "webhooks"

// Enqueue records a delivery of ev and inserts its River job in tx, the
// caller's transaction, so that the delivery exists if and only if the state
// change it announces commits. The body (with the event's timestamp) is
// frozen now and the webhook-id ("msg_…") is fixed for every attempt.
func Enqueue(ctx context.Context, tx *sql.Tx, rc *river.Client[*sql.Tx], st *store.Store, ev Event) (string, error) {
	switch {
	case tx == nil:
		return "", errors.New("webhook enqueue: a transaction is required")
	case rc == nil:
		return "", errors.New("webhook enqueue: River client is required")
	case st == nil:
		return "", errors.New("webhook enqueue: store is required")
	case ev.TenantID == "":
		return "", errors.New("webhook enqueue: tenant id is required")
	case ev.Type == "":
		return "", errors.New("webhook enqueue: event type is required")
	case ev.URL == "":
		return "", errors.New("webhook enqueue: URL is required")
	}
	data := ev.Data
	if len(data) == 0 {
		data = json.RawMessage(`{}`)
	}
	if !json.Valid(data) {
		return "", fmt.Errorf("webhook enqueue: data of %s event is not valid JSON", ev.Type)
	}
	body, err := json.Marshal(struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{ev.Type, st.Now().UTC().Format(time.RFC3339Nano), data})
	if err != nil {
		return "", fmt.Errorf("error encoding %s webhook body: %w", ev.Type, err)
	}
	d := &store.WebhookDelivery{TenantID: ev.TenantID, TaskID: ev.TaskID, Type: ev.Type, URL: ev.URL, Body: body}
	if err := st.CreateWebhookDelivery(ctx, tx, d); err != nil {
		return "", err
	}
	if _, err := rc.InsertTx(ctx, tx, DeliveryArgs{DeliveryID: d.ID}, nil); err != nil {
		return "", fmt.Errorf("error inserting webhook delivery job: %w", err)
	}
	return d.ID, nil
}

// DefaultMaxAttempts is how many times a delivery is tried. With
// DefaultBackoff the retries span more than 24 hours, whatever the jitter.
const DefaultMaxAttempts = 16

// DefaultBackoff is the wait after a failed attempt (numbered from 1):
// 15 s doubling up to 4 h, plus up to 20% random jitter so that receivers
// coming back from an outage are not hit by every sender at once. The
// jitter only adds, so DefaultMaxAttempts-1 retries wait at least 24h15m
// in total.
func DefaultBackoff(attempt int) time.Duration {
	d := backoffBase(attempt)
	return d + rand.N(d/5+1)
}

func backoffBase(attempt int) time.Duration {
	const (
		base = 15 * time.Second
		ceil = 4 * time.Hour
	)
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 20 {
		return ceil
	}
	return min(base<<(attempt-1), ceil)
}

// maxRetryAfter caps how long a receiver's Retry-After can hold a delivery.
const maxRetryAfter = 24 * time.Hour

// responseSnippetLimit is how much of a receiver's answer an attempt keeps;
// up to responseDrainLimit more is read and dropped so the connection can
// be reused.
const (
	responseSnippetLimit = 1024
	responseDrainLimit   = 64 << 10
)

// DelivererConfig configures a Deliverer.
type DelivererConfig struct {
	// Store holds deliveries, attempts and tenants. Required.
	Store *store.Store
	// Keyring opens tenants' webhook secrets. Required.
	Keyring *secretbox.Keyring
	// HTTPClient sends the POSTs; in production netguard's client, so that
	// a webhook URL cannot reach private networks. Required. Its redirect
	// policy is replaced: webhooks do not follow redirects (a POST turned
	// into a GET would be reported delivered without its body).
	HTTPClient *http.Client
	// Timeout bounds one attempt, reading the answer included. Default 10s.
	Timeout time.Duration
	// PerHost bounds the attempts this process makes at once to one
	// destination (the URL's host and port), so that one receiver that
	// never answers cannot hold every webhook worker while other
	// receivers wait. Default DefaultPerHost.
	PerHost int
	// HostBusyWait is how long a delivery whose destination has no free
	// slot is snoozed (plus up to half as much jitter) instead of holding
	// a worker while it waits. Such a snooze is not an attempt. Default 1s.
	HostBusyWait time.Duration
	// BackoffFunc returns the wait after failed attempt number attempt
	// (from 1). Default DefaultBackoff; tests inject short ones.
	BackoffFunc func(attempt int) time.Duration
	// Now is the clock of webhook-timestamp, attempt times and the time of
	// the next attempt. Default time.Now; keep it the wall clock, as
	// receivers check webhook-timestamp against theirs.
	Now func() time.Time
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Deliverer is the River worker of DeliveryArgs: it POSTs a delivery's
// frozen body, signed with the tenant's secret, records the attempt, and
// has River retry what may succeed later.
//
// Outcomes: 2xx is delivered. Network errors, timeouts, 408, 429 and 5xx are
// retried with BackoffFunc, but never before the receiver's Retry-After
// (seconds or an HTTP date, capped at 24h), for up to DefaultMaxAttempts
// attempts; then the delivery fails. Any other status (3xx, 4xx), a URL
// refused by netguard or an invalid URL fails at once without retry.
//
// Deliveries run on their own River queue (Queue). At most PerHost
// attempts to one destination run at once in a process; a delivery that
// finds its destination full is snoozed briefly rather than wait holding a
// worker, so a receiver that hangs delays only its own deliveries.
//
// A tenant without a webhook secret still gets its webhooks, with
// webhook-id and webhook-timestamp but no webhook-signature, and a warning
// is logged once per tenant and process: an unsigned webhook is easier to
// notice and fix than a silently missing one, and receivers that verify
// reject it anyway.
type Deliverer struct {
	river.WorkerDefaults[DeliveryArgs]
	cfg    DelivererConfig
	client *http.Client

	// retryDelay passes the wait decided by Work (backoff or Retry-After)
	// to NextRetry, which River calls right after Work returns, keyed by
	// job id. The same wait is stored as the delivery's next_attempt_at,
	// which Work enforces, so losing this hint can never make an attempt
	// early.
	retryDelay sync.Map // int64 → time.Duration
	// retryPolicy times the retry of a job that did not fail at the
	// receiver (see NextRetry).
	retryPolicy river.DefaultClientRetryPolicy
	// unsignedWarned holds tenants already warned about missing secrets.
	unsignedWarned sync.Map // string → struct{}

	// hostsMu guards inFlight: attempts running now, by destination.
	hostsMu  sync.Mutex
	inFlight map[string]int
}

// DefaultPerHost is the default of DelivererConfig.PerHost.
const DefaultPerHost = 4

// NewDeliverer validates cfg and returns the worker.
func NewDeliverer(cfg DelivererConfig) (*Deliverer, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("webhook deliverer: store is required")
	case cfg.Keyring == nil:
		return nil, errors.New("webhook deliverer: keyring is required")
	case cfg.HTTPClient == nil:
		return nil, errors.New("webhook deliverer: HTTP client is required")
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("webhook deliverer: timeout must not be negative, got %s", cfg.Timeout)
	case cfg.PerHost < 0:
		return nil, fmt.Errorf("webhook deliverer: attempts per host must not be negative, got %d", cfg.PerHost)
	case cfg.HostBusyWait < 0:
		return nil, fmt.Errorf("webhook deliverer: host busy wait must not be negative, got %s", cfg.HostBusyWait)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.PerHost == 0 {
		cfg.PerHost = DefaultPerHost
	}
	if cfg.HostBusyWait == 0 {
		cfg.HostBusyWait = time.Second
	}
	if cfg.BackoffFunc == nil {
		cfg.BackoffFunc = DefaultBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client := *cfg.HTTPClient
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Deliverer{cfg: cfg, client: &client, inFlight: map[string]int{}}, nil
}

// Timeout implements river.Worker: one attempt plus room to record it.
func (d *Deliverer) Timeout(*river.Job[DeliveryArgs]) time.Duration {
	return d.cfg.Timeout + 30*time.Second
}

// NextRetry implements river.Worker: the wait Work decided after a failed
// attempt. Without one the job did not fail at the receiver: it was rescued
// after a crash, or Work failed before sending (the database); River's own
// short backoff applies then, as the receiver's backoff is kept in the
// delivery's next_attempt_at, which Work enforces anyway.
func (d *Deliverer) NextRetry(job *river.Job[DeliveryArgs]) time.Time {
	if v, ok := d.retryDelay.LoadAndDelete(job.ID); ok {
		return time.Now().Add(v.(time.Duration))
	}
	return d.retryPolicy.NextRetry(job.JobRow)
}

// Work implements river.Worker: one attempt of a delivery.
func (d *Deliverer) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	st := d.cfg.Store
	delivery, err := st.GetWebhookDelivery(ctx, st.DB(), job.Args.DeliveryID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted with its task
	}
	if err != nil {
		return err
	}
	if delivery.Status != store.WebhookPending {
		return nil
	}
	// Never early, even if the job runs before the time recorded with the
	// last attempt (a rescued job, a retry from River UI, another clock).
	// The first attempt is due at once.
	if delivery.AttemptCount > 0 && delivery.NextAttemptAt != nil {
		if wait := delivery.NextAttemptAt.Sub(d.cfg.Now()); wait > 0 {
			return river.JobSnooze(wait)
		}
	}
	log := d.cfg.Logger.With(slog.String("delivery_id", delivery.ID), slog.String("webhook_id", delivery.WebhookID),
		slog.String("type", delivery.Type), slog.String("tenant_id", delivery.TenantID))

	secret, err := d.secret(ctx, delivery.TenantID, log)
	if err != nil {
		return err
	}
	host := destination(delivery.URL)
	if !d.acquire(host) {
		wait := d.cfg.HostBusyWait + rand.N(d.cfg.HostBusyWait/2+1)
		log.DebugContext(ctx, "webhook destination busy, snoozing", slog.String("host", host), slog.Duration("wait", wait))
		return river.JobSnooze(wait)
	}
	res := func() attemptResult {
		defer d.release(host)
		return d.attempt(ctx, delivery, secret)
	}()
	if ctx.Err() != nil && res.statusCode == 0 {
		// Shutting down or out of time: River retries, no attempt recorded
		// (the receiver may have got nothing).
		return fmt.Errorf("webhook delivery interrupted: %w", ctx.Err())
	}

	outcome := store.WebhookOutcome{Status: store.WebhookDelivered}
	var delay time.Duration
	switch {
	case res.kind == outcomeRetry && job.Attempt < job.MaxAttempts:
		delay = max(d.cfg.BackoffFunc(job.Attempt), res.retryAfter)
		next := d.cfg.Now().Add(delay)
		outcome = store.WebhookOutcome{Status: store.WebhookPending, NextAttemptAt: &next}
	case res.kind != outcomeDelivered:
		outcome.Status = store.WebhookFailed
	}
	a := &store.WebhookAttempt{DeliveryID: delivery.ID, StartedAt: res.startedAt, StatusCode: res.statusCode,
		LatencyMS: res.latency.Milliseconds(), Error: res.errText, ResponseBody: res.snippet}
	// The attempt happened: record it even if River is stopping.
	recordCtx := context.WithoutCancel(ctx)
	err = st.InTx(recordCtx, func(tx *sql.Tx) error {
		_, err := st.RecordWebhookAttempt(recordCtx, tx, a, outcome)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted with its task meanwhile
	}
	if err != nil {
		return err
	}
	attrs := []any{slog.Int("attempt", a.Attempt), slog.Int("status_code", res.statusCode), slog.Int64("latency_ms", a.LatencyMS)}
	switch outcome.Status {
	case store.WebhookDelivered:
		log.InfoContext(ctx, "webhook delivered", attrs...)
		return nil
	case store.WebhookPending:
		log.WarnContext(ctx, "webhook attempt failed, will retry", append(attrs, slog.String("error", res.errText), slog.Duration("retry_in", delay))...)
		d.retryDelay.Store(job.ID, delay)
		return errors.New(res.errText)
	}
	log.WarnContext(ctx, "webhook delivery failed", append(attrs, slog.String("error", res.errText))...)
	if res.kind == outcomeRetry {
		return errors.New(res.errText) // last attempt: River discards the job
	}
	return river.JobCancel(errors.New(res.errText))
}

// destination is what PerHost counts by: the URL's host and port,
// lowercased. An unparsable URL counts as its own destination (its attempt
// fails at once anyway).
func destination(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return rawURL
	}
	return strings.ToLower(u.Host)
}

// acquire takes one of host's PerHost attempt slots, or reports that none
// is free.
func (d *Deliverer) acquire(host string) bool {
	d.hostsMu.Lock()
	defer d.hostsMu.Unlock()
	if d.inFlight[host] >= d.cfg.PerHost {
		return false
	}
	d.inFlight[host]++
	return true
}

func (d *Deliverer) release(host string) {
	d.hostsMu.Lock()
	defer d.hostsMu.Unlock()
	if d.inFlight[host]--; d.inFlight[host] <= 0 {
		delete(d.inFlight, host)
	}
}

// secret returns the tenant's opened signing secret, or "" when it has
// none.
func (d *Deliverer) secret(ctx context.Context, tenantID string, log *slog.Logger) (string, error) {
	st := d.cfg.Store
	tenant, err := st.GetTenant(ctx, st.DB(), tenantID)
	if err != nil {
		return "", err
	}
	if tenant.WebhookSecret == "" {
		if _, warned := d.unsignedWarned.LoadOrStore(tenantID, struct{}{}); !warned {
			log.WarnContext(ctx, "tenant has no webhook secret: sending webhooks unsigned; create one with mcpidp keys create or MCPIDP_WEBHOOK_SECRET")
		}
		return "", nil
	}
	secret, err := d.cfg.Keyring.Open(tenant.WebhookSecret, []byte(AssociatedData))
	if err != nil {
		return "", fmt.Errorf("error opening webhook secret of tenant %q: %w", tenantID, err)
	}
	return string(secret), nil
}

type outcomeKind int

const (
	outcomeDelivered outcomeKind = iota
	outcomeRetry
	outcomePermanent
)

type attemptResult struct {
	kind       outcomeKind
	startedAt  time.Time
	latency    time.Duration
	statusCode int
	errText    string
	snippet    string
	retryAfter time.Duration
}

// attempt sends one POST and classifies what came back.
func (d *Deliverer) attempt(ctx context.Context, delivery *store.WebhookDelivery, secret string) attemptResult {
	now := d.cfg.Now()
	res := attemptResult{startedAt: now}
	permanent := func(msg string) attemptResult {
		res.kind, res.errText = outcomePermanent, msg
		return res
	}
	if _, err := netguard.ValidateURL(delivery.URL); err != nil {
		return permanent("invalid webhook URL: " + err.Error())
	}
	header := http.Header{}
	if secret != "" {
		signed, err := webhooks.SignedHeaders(secret, delivery.WebhookID, now, delivery.Body)
		if err != nil {
			return permanent("error signing webhook: " + err.Error())
		}
		header = signed
	} else {
		header.Set(webhooks.HeaderID, delivery.WebhookID)
		header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	}
	header.Set("Content-Type", "application/json")
	header.Set("User-Agent", UserAgent)

	reqCtx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, delivery.URL, bytes.NewReader(delivery.Body))
	if err != nil {
		return permanent("invalid webhook URL: " + err.Error())
	}
	req.Header = header

	start := time.Now()
	resp, err := d.client.Do(req)
	if err != nil {
		res.latency = time.Since(start)
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err // the URL is the tenant's own; do not repeat it
		}
		switch {
		case errors.Is(err, netguard.ErrBlocked):
			return permanent("webhook URL refused: " + err.Error())
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			res.kind, res.errText = outcomeRetry, fmt.Sprintf("no answer within %s", d.cfg.Timeout)
		default:
			res.kind, res.errText = outcomeRetry, err.Error()
		}
		return res
	}
	// A few bytes more than kept, so the cut can fall between characters.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, responseSnippetLimit+utf8.UTFMax))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, responseDrainLimit))
	resp.Body.Close()
	res.latency = time.Since(start)
	res.statusCode = resp.StatusCode
	res.snippet = truncateUTF8(snippet, responseSnippetLimit)

	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		res.kind = outcomeDelivered
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		res.kind = outcomeRetry
		res.errText = "receiver answered " + resp.Status
		res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), d.cfg.Now())
	case code >= 300 && code < 400:
		res.kind = outcomePermanent
		res.errText = "receiver answered " + resp.Status + " (redirect to " + strconv.Quote(resp.Header.Get("Location")) +
			"); webhooks do not follow redirects, use the final URL"
	default:
		res.kind = outcomePermanent
		res.errText = "receiver answered " + resp.Status
	}
	return res
}

// parseRetryAfter reads a Retry-After header, delay-seconds or HTTP date,
// as a wait from now: zero when absent, malformed or in the past, at most
// maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var wait time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		wait = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		wait = at.Sub(now)
	}
	return min(max(wait, 0), maxRetryAfter)
}

// truncateUTF8 returns at most limit bytes of b as a string, not cutting a
// character in two.
func truncateUTF8(b []byte, limit int) string {
	if len(b) <= limit {
		return string(b)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return string(b[:cut])
}
