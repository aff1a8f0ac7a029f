package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/mcpidp/mcpidp/internal/task"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/store"
)

// MaxResultWait caps ?wait= on result URLs.
const MaxResultWait = 60 * time.Second

// Result returns the task behind a public result token. With wait > 0 it
// long-polls until the task's status differs from the one it had at the
// first read (or it ends), or wait runs out.
func (a *API) Result(ctx context.Context, token string, wait time.Duration) (*task.Object, error) {
	st := a.cfg.Store
	load := func() (*store.Task, error) {
		t, err := st.GetTaskByResultToken(ctx, st.DB(), token)
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("result")
		}
		return t, err
	}
	t, err := load()
	if err != nil {
		return nil, err
	}
	if wait > MaxResultWait {
		wait = MaxResultWait
	}
	if wait > 0 && !t.Status.Terminal() {
		first := t.Status
		deadline := time.NewTimer(wait)
		defer deadline.Stop()
		tick := time.NewTicker(a.cfg.ResultPollInterval)
		defer tick.Stop()
	poll:
		for {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-deadline.C:
				break poll
			case <-tick.C:
			}
			if t, err = load(); err != nil {
				return nil, err
			}
			if t.Status != first || t.Status.Terminal() {
				break
			}
		}
	}
	steps, err := st.ListSteps(ctx, st.DB(), t.ID)
	if err != nil {
		return nil, err
	}
	return task.Build(t, steps, a.cfg.PublicURL), nil
}

// ResultImage returns image n of a task's step (both counted from 0) by the
// task's result token: the same token rules as the result URLs.
func (a *API) ResultImage(ctx context.Context, token string, step, n int) (*agentloop.Image, error) {
	st := a.cfg.Store
	t, err := st.GetTaskByResultToken(ctx, st.DB(), token)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("result")
	}
	if err != nil {
		return nil, err
	}
	s, err := st.GetStep(ctx, st.DB(), t.ID, step)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("image")
	}
	if err != nil {
		return nil, err
	}
	var data agentloop.Step
	if err := json.Unmarshal(s.Data, &data); err != nil {
		return nil, fmt.Errorf("error reading step %d of task %s: %w", step, t.ID, err)
	}
	if n < 0 || n >= len(data.Images) {
		return nil, notFound("image")
	}
	return &data.Images[n], nil
}

// servedImageType is the Content-Type an image is served with, and whether
// it may be shown inline. A tool names the type, so anything but a raster
// image/* type (SVG can carry script) is served as a download.
func servedImageType(mimeType string) (string, bool) {
	mt, _, err := mime.ParseMediaType(mimeType)
	if err != nil || !strings.HasPrefix(mt, "image/") || strings.Contains(mt, "svg") {
		return "application/octet-stream", false
	}
	return mt, true
}

// The forms of a result.
const (
	formatHTML     = "html"
	formatJSON     = "json"
	formatMarkdown = "md"
)

// resultFormat picks the form of a bare result URL from an Accept header:
// the one with the highest quality, where each form's quality is that of
// the most specific media range matching it, and ties go to the HTML page
// (then JSON, then markdown). Without a usable Accept it is the HTML page:
// a bare result URL is the link people open.
func resultFormat(accept string) string {
	forms := []struct{ format, mediaType string }{
		{formatHTML, "text/html"}, {formatJSON, "application/json"}, {formatMarkdown, "text/markdown"},
	}
	best, bestQ := formatHTML, 0.0
	for _, f := range forms {
		if q := acceptQuality(accept, f.mediaType); q > bestQ {
			best, bestQ = f.format, q
		}
	}
	return best
}

// acceptQuality is the quality an Accept header gives mediaType: that of
// its most specific matching range (type/subtype, then type/*, then */*),
// 0 when none matches.
func acceptQuality(accept, mediaType string) float64 {
	typ, _, _ := strings.Cut(mediaType, "/")
	q, specificity := 0.0, 0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		s := 0
		switch {
		case mt == mediaType:
			s = 3
		case mt == typ+"/*":
			s = 2
		case mt == "*/*":
			s = 1
		default:
			continue
		}
		if s < specificity {
			continue
		}
		pq := 1.0
		if v, ok := params["q"]; ok {
			if pq, err = strconv.ParseFloat(v, 64); err != nil || pq < 0 || pq > 1 {
				continue
			}
		}
		if s > specificity || pq > q {
			q, specificity = pq, s
		}
	}
	return q
}
