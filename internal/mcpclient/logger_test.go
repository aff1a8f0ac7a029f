package mcpclient

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLibraryLoggerDemotesInfo(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := libraryLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.Info("listening to server forever")
	require.Empty(t, buf.String(), "an Info message of mcp-go got through at Info")
	l.With("k", "v").Warn("server rejected response")
	l.Error("failed to listen")
	require.Contains(t, buf.String(), "level=WARN msg=\"server rejected response\" k=v")
	require.Contains(t, buf.String(), "level=ERROR msg=\"failed to listen\"")

	buf.Reset()
	l = libraryLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Info("listening to server forever")
	require.Contains(t, buf.String(), "level=DEBUG msg=\"listening to server forever\"")
}
