package app_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
)

// BenchmarkCreateTask measures POST /v1/tasks end to end over loopback HTTP:
// authentication, validation, the task row and its River job in one
// transaction, and the 202 answer. Workers run the tasks meanwhile (the
// model answers at once), as in production.
func BenchmarkCreateTask(b *testing.B) {
	for _, backend := range []storetest.Backend{storetest.SQLite, storetest.Postgres} {
		b.Run(string(backend), func(b *testing.B) {
			env := startEnv(b, storetest.DatabaseURL(b, backend))
			env.Model.Handle(func(llmtest.Request) llmtest.Response { return llmtest.Response{Content: "ok"} })
			body := []byte(`{"user":"bench","model":"m","input":"hello","metadata":{"k":"v"}}`)
			client := &http.Client{}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				req, _ := http.NewRequest("POST", env.URL+"/v1/tasks", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+keyAcme)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
