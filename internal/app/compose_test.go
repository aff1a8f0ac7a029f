package app_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/app"
)

// TestComposeFile loads compose.yaml as `docker compose` would (the
// compose-spec loader, schema validation and interpolation included; no
// Docker engine needed) and checks that what it runs is an mcpidp that
// starts: known commands, a configuration LoadConfig accepts, and the
// order PostgreSQL → migrate → api and workers.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	for _, env := range [][]string{
		nil, // the defaults written in the file
		{"OPENAI_API_KEY=sk-test", "MCPIDP_API_KEYS=acme:acme-key-0123456789abcdef", "MCPIDP_PUBLIC_URL=https://mcpidp.example.com"},
	} {
		opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "compose.yaml")},
			cli.WithWorkingDirectory(root), cli.WithName("mcpidp"), cli.WithEnv(env))
		require.NoError(t, err)
		p, err := opts.LoadProject(context.Background())
		require.NoError(t, err, "compose.yaml must be a valid Compose file")

		require.ElementsMatch(t, []string{"postgres", "migrate", "api", "worker"}, p.ServiceNames())
		pg := p.Services["postgres"]
		require.NotNil(t, pg.HealthCheck, "migrate waits for PostgreSQL to be healthy")

		commands := map[string][]string{"migrate": {"migrate", "up"}, "api": {"api"}, "worker": {"worker"}}
		for name, command := range commands {
			s := p.Services[name]
			require.NotNil(t, s.Build, name)
			_, err := os.Stat(filepath.Join(s.Build.Context, "Dockerfile"))
			require.NoError(t, err, "%s builds from a directory with a Dockerfile", name)
			require.Equal(t, types.ShellCommand(command), s.Command, name)
			// mcpidp knows the command and its arguments.
			var help strings.Builder
			require.NoError(t, app.Run(context.Background(), append(slices.Clone(command), "--help"), func(string) string { return "" }, &help, io.Discard), name)
			require.Contains(t, help.String(), "Usage: mcpidp "+command[0])

			// Its environment is a configuration mcpidp accepts, on PostgreSQL
			// at the compose service.
			cfg, err := app.LoadConfig(func(k string) string {
				if v := s.Environment[k]; v != nil {
					return *v
				}
				return ""
			})
			require.NoError(t, err, name)
			require.True(t, strings.HasPrefix(cfg.DatabaseURL, "postgres://"), name)
			require.Contains(t, cfg.DatabaseURL, "@postgres:5432/")
			require.NotEmpty(t, cfg.APIKeys, name)
			require.NotEmpty(t, cfg.EncryptionKey, "%s: PostgreSQL needs MCPIDP_ENCRYPTION_KEY", name)
			for k := range s.Environment {
				require.True(t, strings.HasPrefix(k, "MCPIDP_") || strings.HasPrefix(k, "OTEL_"), "%s sets %s", name, k)
			}
		}
		require.Equal(t, types.ServiceConditionHealthy, p.Services["migrate"].DependsOn["postgres"].Condition)
		for _, name := range []string{"api", "worker"} {
			require.Equal(t, types.ServiceConditionCompletedSuccessfully, p.Services[name].DependsOn["migrate"].Condition, name)
		}
		require.Equal(t, 2, *p.Services["worker"].Deploy.Replicas)
		for _, name := range []string{"api", "worker"} {
			grace := p.Services[name].StopGracePeriod
			require.NotNil(t, grace, "%s: a stop grace period longer than the shutdown timeout", name)
			require.Greater(t, time.Duration(*grace), 20*time.Second, name)
		}
		require.Len(t, p.Services["api"].Ports, 1)
		require.Equal(t, "8080", p.Services["api"].Ports[0].Published)
		if env != nil {
			require.Equal(t, "sk-test", *p.Services["api"].Environment["MCPIDP_UPSTREAM_API_KEY"])
			require.Equal(t, "https://mcpidp.example.com", *p.Services["api"].Environment["MCPIDP_PUBLIC_URL"])
		}
	}
}
