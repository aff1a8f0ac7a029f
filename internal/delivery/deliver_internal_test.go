package delivery

import (
	"net/http"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"Sunday, 01-Jun-25 12:00:30 GMT", 30 * time.Second}, // RFC 850, which HTTP dates also allow
		{"999999999999", 24 * time.Hour},
		{now.Add(72 * time.Hour).Format(http.TimeFormat), 24 * time.Hour},
	} {
		require.Equal(t, tc.want, parseRetryAfter(tc.header, now), "Retry-After: %q", tc.header)
	}
}

func TestDefaultBackoffSpansADay(t *testing.T) {
	t.Parallel()
	// The retries after the first attempt must cover at least 24h even
	// with the least jitter, and not run on for days.
	var least, most time.Duration
	for attempt := 1; attempt < DefaultMaxAttempts; attempt++ {
		base := backoffBase(attempt)
		least += base
		most += base + base/5
		for range 20 {
			d := DefaultBackoff(attempt)
			require.GreaterOrEqual(t, d, base)
			require.LessOrEqual(t, d, base+base/5)
		}
	}
	require.GreaterOrEqual(t, least, 24*time.Hour)
	require.Less(t, most, 36*time.Hour)
	require.Equal(t, 15*time.Second, backoffBase(1))
	require.Equal(t, 30*time.Second, backoffBase(2))
	require.Equal(t, 4*time.Hour, backoffBase(11))
	require.Equal(t, 4*time.Hour, backoffBase(1000))
	require.Equal(t, DefaultMaxAttempts, DeliveryArgs{}.InsertOpts().MaxAttempts)
}

func TestTruncateUTF8(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc", truncateUTF8([]byte("abc"), 1024))
	long := make([]byte, 0, 1100)
	for len(long) < 1100 {
		long = append(long, "é"...) // two bytes each
	}
	got := truncateUTF8(long, 1023)
	require.Len(t, got, 1022)
	require.Equal(t, string(long[:1022]), got)
}

// A job that did not fail at the receiver (rescued after a crash) is tried
// again soon: the receiver's backoff lives in the delivery row, not here.
// One that failed at the receiver waits what Work decided.
func TestNextRetryAfterCrashIsShort(t *testing.T) {
	t.Parallel()
	d := &Deliverer{cfg: DelivererConfig{BackoffFunc: DefaultBackoff}}
	job := &river.Job[DeliveryArgs]{JobRow: &rivertype.JobRow{ID: 7, Attempt: 1}}

	rescued := time.Until(d.NextRetry(job))
	require.Less(t, rescued, 3*time.Second, "a rescued first attempt waits River's short backoff, not the receiver's")

	d.retryDelay.Store(job.ID, 15*time.Second)
	failed := time.Until(d.NextRetry(job))
	require.Greater(t, failed, 14*time.Second)
	require.LessOrEqual(t, failed, 15*time.Second)
}
