package mcpclient

import (
	"context"
	"log/slog"
)

// libraryLogger is the logger mcp-go's transports get: what they say at Info ("listening to server
// forever", once per session) is Debug for mcpidp, so that at the usual level nothing is formatted
// or redacted for it; their warnings and errors stay as they are.
func libraryLogger(l *slog.Logger) *slog.Logger {
	return slog.New(demoteInfo{l.Handler()})
}

type demoteInfo struct{ slog.Handler }

func demote(level slog.Level) slog.Level {
	if level > slog.LevelDebug && level < slog.LevelWarn {
		return slog.LevelDebug
	}
	return level
}

func (h demoteInfo) Enabled(ctx context.Context, level slog.Level) bool {
	return h.Handler.Enabled(ctx, demote(level))
}

func (h demoteInfo) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h demoteInfo) WithAttrs(attrs []slog.Attr) slog.Handler {
	return demoteInfo{h.Handler.WithAttrs(attrs)}
}

func (h demoteInfo) WithGroup(name string) slog.Handler {
	return demoteInfo{h.Handler.WithGroup(name)}
}
