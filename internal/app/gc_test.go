package app_test

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/app"
)

func TestLoadConfigReadsGCPercent(t *testing.T) {
	t.Parallel()
	cfg, err := app.LoadConfig(func(string) string { return "" })
	require.NoError(t, err)
	require.Equal(t, app.DefaultGCPercent, cfg.GCPercent)

	cfg, err = app.LoadConfig(func(k string) string { return map[string]string{"MCPIDP_GC_PERCENT": "200"}[k] })
	require.NoError(t, err)
	require.Equal(t, 200, cfg.GCPercent)

	for _, bad := range []string{"10", "off", "20000"} {
		_, err = app.LoadConfig(func(k string) string { return map[string]string{"MCPIDP_GC_PERCENT": bad}[k] })
		require.ErrorContains(t, err, "MCPIDP_GC_PERCENT must be a whole number from 25 to 10000", bad)
	}
}

// TestTuneGC checks that the server commands' collector target is applied
// unless the operator set GOGC. Not parallel: the target is the process's.
func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	app.TuneGC(&app.Config{GCPercent: 300}, func(string) string { return "" })
	require.Equal(t, 300, debug.SetGCPercent(100))

	app.TuneGC(&app.Config{GCPercent: 300}, func(k string) string { return map[string]string{"GOGC": "50"}[k] })
	require.Equal(t, 100, debug.SetGCPercent(100), "GOGC is set: the runtime's value stays")
}
