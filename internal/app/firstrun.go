package app

import (
	"context"
	"log/slog"
)

// guideFirstRun logs, once at start, what a newcomer still has to set up:
// an API key to call the API with, and the upstream model's key. A process
// that serves no API (worker) needs no API key.
func (a *App) guideFirstRun(ctx context.Context) {
	if a.mode != ModeWorker && len(a.cfg.APIKeys) == 0 {
		has, err := a.store.HasAPIKeys(ctx, a.store.DB())
		if err != nil {
			a.logger.WarnContext(ctx, "could not check for API keys", slog.String("error", err.Error()))
		} else if !has {
			a.logger.WarnContext(ctx, "no API key yet: every /v1 request will be refused (401). Create one with "+
				"`mcpidp keys create --tenant NAME` (printed once, stored hashed), "+
				"or set MCPIDP_API_KEYS=tenant:key (a key of at least 16 characters)")
		}
	}
	if a.cfg.UpstreamAPIKey == "" { // local models (Ollama, vLLM) may need none: a warning, not an error
		a.logger.WarnContext(ctx, "no upstream model key: set MCPIDP_UPSTREAM_API_KEY (or OPENAI_API_KEY); "+
			"until then the model is called without a key, unless a request brings its own X-Upstream-Authorization",
			slog.String("upstream_base_url", a.cfg.UpstreamBaseURL))
	}
}
