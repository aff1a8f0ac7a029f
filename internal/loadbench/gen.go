package loadbench

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// shotFunc sends one request and returns the latency that counts for it:
// normally the whole exchange, for time-to-first-byte the wait for the first
// byte of the body. start is when the request was due to leave, which for an
// open-loop run may be before shotFunc was called.
type shotFunc func(ctx context.Context, start time.Time) (time.Duration, error)

// sample is what one run of one target measured.
type sample struct {
	latencies []time.Duration
	errors    int
	firstErr  error
	elapsed   time.Duration
	cpu       time.Duration // CPU time of the whole process during the run
}

func (s *sample) add(o sample) {
	s.latencies = append(s.latencies, o.latencies...)
	s.errors += o.errors
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
	s.elapsed += o.elapsed
	s.cpu += o.cpu
}

func (s *sample) requests() int { return len(s.latencies) + s.errors }

// rate is requests per second over the measured time.
func (s *sample) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.requests()) / s.elapsed.Seconds()
}

// cpuPerRequest is the process CPU time spent per request.
func (s *sample) cpuPerRequest() time.Duration {
	if s.requests() == 0 {
		return 0
	}
	return s.cpu / time.Duration(s.requests())
}

// quantile is the q-quantile of the latencies (nearest rank over all
// samples, sorted: exact, no histogram buckets).
func (s *sample) quantile(q float64) time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	l := slices.Clone(s.latencies)
	slices.Sort(l)
	i := int(q*float64(len(l))+0.5) - 1
	return l[max(0, min(i, len(l)-1))]
}

// closedLoop runs conc workers that each send a request as soon as their
// previous one ended, for d.
func closedLoop(ctx context.Context, conc int, d time.Duration, shot shotFunc) sample {
	var (
		mu  sync.Mutex
		all sample
		wg  sync.WaitGroup
	)
	cpu0 := processCPU()
	begin := time.Now()
	deadline := begin.Add(d)
	for range conc {
		wg.Go(func() {
			var local sample
			for time.Now().Before(deadline) && ctx.Err() == nil {
				lat, err := shot(ctx, time.Now())
				if err != nil {
					local.errors++
					if local.firstErr == nil {
						local.firstErr = err
					}
					continue
				}
				local.latencies = append(local.latencies, lat)
			}
			mu.Lock()
			all.add(local)
			mu.Unlock()
		})
	}
	wg.Wait()
	all.elapsed, all.cpu = time.Since(begin), processCPU()-cpu0
	return all
}

// openLoop sends rate requests per second for d whatever the answers'
// latency: request i is due at begin + i/rate and leaves then on a goroutine
// of its own (or at once when the sender is late). Latency is counted from
// the due time, so a stall shows in the percentiles instead of slowing the
// sender (no coordinated omission).
func openLoop(ctx context.Context, rate int, d time.Duration, shot shotFunc) sample {
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	var (
		errs     atomic.Int64
		errMu    sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	cpu0 := processCPU()
	begin := time.Now()
	for i := range n {
		due := begin.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			l, err := shot(ctx, due)
			if err != nil {
				errs.Add(1)
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
				return
			}
			lat[i], ok[i] = l, true
		})
	}
	wg.Wait()
	s := sample{elapsed: time.Since(begin), cpu: processCPU() - cpu0, errors: int(errs.Load()), firstErr: firstErr}
	for i := range n {
		if ok[i] {
			s.latencies = append(s.latencies, lat[i])
		}
	}
	return s
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
