package apisurface_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/apisurface"
)

func TestRead(t *testing.T) {
	t.Parallel()

	s, err := apisurface.Read("testdata/leaky")
	require.NoError(t, err)
	require.Equal(t, []string{"Config", "Default", "ErrPublic", "Hidden", "Limits", "New", "Worker", "Worker.Clean", "Worker.Work"}, s.Names)
	require.Equal(t, []string{
		"Config: example.com/mod/internal/engine.Engine",
		"Default: example.com/mod/internal/engine.DefaultSteps",
		"Hidden: example.com/mod/internal/engine.Job",
		"Limits: example.com/mod/internal/limits.Limits",
		"Worker.Work: example.com/mod/internal/engine.Job",
		"Worker: example.com/mod/internal/engine.Defaults",
	}, s.Leaks)
}

func TestReadNoPackage(t *testing.T) {
	t.Parallel()

	_, err := apisurface.Read(t.TempDir())
	require.Error(t, err)
}
