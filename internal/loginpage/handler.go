package loginpage

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/mcpidp/mcpidp/internal/mcpauth"
)

// HandlerConfig configures NewHandler.
type HandlerConfig struct {
	// OAuth is the engine whose logins are served. Required.
	OAuth *mcpauth.Engine
	// Logger receives the failures that are none of the engine's expected
	// outcomes. Required.
	Logger *slog.Logger
	// Prefix is the path the login paths are served under, such as
	// "/proxy" (empty for the root).
	Prefix string
}

func (c *HandlerConfig) validate() error {
	switch {
	case c.OAuth == nil:
		return errors.New("OAuth engine is required")
	case c.Logger == nil:
		return errors.New("logger is required")
	}
	return nil
}

// NewHandler returns the handler of the login paths, the same for
// mcpidp's server and the in-process chat proxy: GET
// Prefix+mcpauth.StartPathPrefix+"{id}" (a login link: bind a fresh state
// to this browser with a cookie and redirect to the authorization server),
// GET Prefix+mcpauth.CallbackPath (the authorization server's redirect back)
// and GET Prefix+mcpauth.ClientMetadataPath.
func NewHandler(cfg HandlerConfig) (http.Handler, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("loginpage: %w", err)
	}
	h := &handler{oauth: cfg.OAuth, logger: cfg.Logger}
	prefix := strings.TrimRight(cfg.Prefix, "/")
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+mcpauth.StartPathPrefix+"{id}", h.start)
	mux.HandleFunc("GET "+prefix+mcpauth.CallbackPath, h.callback)
	mux.HandleFunc("GET "+prefix+mcpauth.ClientMetadataPath, h.clientMetadata)
	return mux, nil
}

type handler struct {
	oauth  *mcpauth.Engine
	logger *slog.Logger
}

func (h *handler) start(w http.ResponseWriter, r *http.Request) {
	started, err := h.oauth.Start(r.Context(), r.PathValue("id"))
	if err != nil {
		page, known := StartFailed(err)
		if !known {
			h.logger.WarnContext(r.Context(), "login start failed", slog.String("error", err.Error()))
		}
		Write(w, page)
		return
	}
	http.SetCookie(w, started.Cookie)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, started.URL, http.StatusFound)
}

func (h *handler) callback(w http.ResponseWriter, r *http.Request) {
	res, err := h.oauth.Callback(r.Context(), r.URL.Query(), r.Cookies())
	if err != nil {
		page, known := CallbackFailed(err)
		switch {
		case errors.Is(err, mcpauth.ErrOtherBrowser):
			// Someone else's login answer, opened here: a mistake (two
			// browsers) or an attempt to log this browser in to another
			// account. The state is not shown: it still works for its owner.
			h.logger.InfoContext(r.Context(), "login callback refused: it came from another browser than the one that started the login")
		case !known:
			h.logger.ErrorContext(r.Context(), "login callback failed", slog.String("error", err.Error()))
		}
		Write(w, page)
		return
	}
	Write(w, Authorized(res.ServerURL))
}

func (h *handler) clientMetadata(w http.ResponseWriter, _ *http.Request) {
	doc, err := h.oauth.ClientMetadataDocument()
	if err != nil {
		http.Error(w, "client metadata unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
}
