package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/llm/llmtest"
	"github.com/mcpidp/mcpidp/internal/mcpauth/mcpauthtest"
	"github.com/mcpidp/mcpidp/internal/mcptest"
	"github.com/mcpidp/mcpidp/internal/store/storetest"
	"github.com/mcpidp/mcpidp/internal/testenv"
)

const (
	// pageToolOutput and pageAnswer carry markup that must not run on
	// the result page: a script, and an image whose error handler sets
	// the same canary.
	pageToolOutput = `<script>window.pwned="tool-script"</script><img src="x" onerror="window.pwned='tool-onerror'"> Sunny, 21 °C`
	pageAnswer     = "The forecast is **sunny** with a high of 21 °C.\n\n| Day | Sky |\n| --- | --- |\n| Mon | sun |\n\n" +
		`<script>window.pwned="answer-script"</script><img src="x" onerror="window.pwned='answer-onerror'">`
)

// forecastPNG is the chart the forecast tool returns: a 120×60 picture.
func forecastPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 120, 60))
	for x := range 120 {
		for y := range 60 {
			img.Set(x, y, color.RGBA{R: uint8(2 * x), G: uint8(4 * y), B: 200, A: 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

// startForecastServer starts an MCP server whose forecast tool answers
// with pageToolOutput and a PNG.
func startForecastServer(t *testing.T) string {
	t.Helper()
	chart := base64.StdEncoding.EncodeToString(forecastPNG(t))
	s := server.NewMCPServer("weather", "1.0.0")
	s.AddTool(mcp.NewTool("forecast", mcp.WithDescription("Forecasts."), mcp.WithString("city")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{
				mcp.NewTextContent(pageToolOutput), mcp.NewImageContent(chart, "image/png"),
			}}, nil
		})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// pageEvent is one JSON line of testdata/result_page.mjs.
type pageEvent struct {
	Event       string   `json:"event"`
	HTTPStatus  int      `json:"httpStatus"`
	CSP         string   `json:"csp"`
	Errors      []string `json:"errors"`
	Status      string   `json:"status"`
	Badge       string   `json:"badge"`
	Title       string   `json:"title"`
	Pwned       *string  `json:"pwned"`
	Violations  []string `json:"violations"`
	Scripts     int      `json:"scripts"`
	Live        *string  `json:"live"`
	Styled      bool     `json:"styled"`
	ScrollWidth int      `json:"scrollWidth"`
	After       *struct {
		Pwned      *string  `json:"pwned"`
		Violations []string `json:"violations"`
	} `json:"after"`

	// done
	Answer                  string   `json:"answer"`
	AnswerImg               []string `json:"answerImg"`
	Tools                   int      `json:"tools"`
	Closed                  bool     `json:"closed"`
	OutputHiddenWhileClosed bool     `json:"outputHiddenWhileClosed"`
	Opened                  bool     `json:"opened"`
	OutputVisible           bool     `json:"outputVisible"`
	ToolName                string   `json:"toolName"`
	Output                  string   `json:"output"`
	Image                   struct {
		Src           string `json:"src"`
		Width, Height int
	} `json:"image"`
	Refresh int `json:"refresh"`

	// login
	Headline     string `json:"headline"`
	Logins       int    `json:"logins"`
	Href         string `json:"href"`
	Text         string `json:"text"`
	ButtonWidth  int    `json:"buttonWidth"`
	ButtonHeight int    `json:"buttonHeight"`

	Callback        string   `json:"callback"`
	AfterStatus     string   `json:"afterStatus"`
	AfterViolations []string `json:"afterViolations"`
	AfterLogins     int      `json:"afterLogins"`

	// live
	Reached      bool    `json:"reached"`
	Loads        int     `json:"loads"`
	SameDocument *string `json:"sameDocument"`
	Working      int     `json:"working"`
}

// The result pages as a person sees them on a phone, in headless
// Chromium: a finished task's answer and its folded tool call with the
// tool's image, and nothing the model or the tool wrote runs; a waiting
// task's login button, which logs the user in so that the page follows
// the task to its end; a running task's page that turns to completed by
// itself, in place, and without JavaScript by its meta refresh. It runs
// on SQLite only, with one Chromium (the handler tests in api cover both
// backends).
func TestResultPageInBrowser(t *testing.T) {
	t.Parallel()
	chromium := testenv.Chromium(t)
	forecast := startForecastServer(t)
	slow, slowNoJS := mcptest.New(t, mcptest.StreamableHTTP), mcptest.New(t, mcptest.StreamableHTTP)
	protected, _ := mcptest.NewProtected(t, mcpauthtest.Config{})
	env := startEnv(t, storetest.DatabaseURL(t, storetest.SQLite))
	env.Model.Handle(func(req llmtest.Request) llmtest.Response {
		input := req.Messages[0].Content
		for _, m := range req.Messages {
			if m.Role == "tool" {
				switch input {
				case "live":
					return llmtest.Response{Content: "The wait is **over**."}
				case "notes":
					return llmtest.Response{Content: "Your notes are **ready**."}
				}
				return llmtest.Response{Content: pageAnswer}
			}
		}
		switch input {
		case "live":
			return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "wait"), Arguments: `{"message":"page"}`}}}
		case "notes":
			return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "echo"), Arguments: `{"message":"notes"}`}}}
		}
		return llmtest.Response{ToolCalls: []llmtest.ToolCall{{Name: req.OfferedTool(t, "forecast"), Arguments: `{"city":"Paris"}`}}}
	})
	submit := func(input, serverURL string) task {
		return env.submit(t, keyAcme, map[string]any{"user": "alice", "model": "gpt-test", "input": input,
			"tools": []map[string]any{{"type": "mcp", "url": serverURL}}})
	}
	pageURL := func(tk task) string { return strings.TrimSuffix(tk.ResultURLs.JSON, ".json") }

	done := waitDone(t, submit("weather", forecast))
	require.Equal(t, "completed", done.Status, "error: %+v", done.Error)
	login := waitStatus(t, submit("notes", protected.URL), "awaiting_authorization")
	require.Len(t, login.AuthorizationRequired, 1)
	live, noJS := submit("live", slow.URL), submit("live", slowNoJS.URL)
	for _, s := range []*mcptest.Server{slow, slowNoJS} {
		select {
		case <-s.Started():
		case <-time.After(30 * time.Second):
			t.Fatal("a live task's tool call did not start")
		}
	}

	dir := t.TempDir()
	shot := filepath.Join(dir, "done.png")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Node22(t), filepath.Join("testdata", "result_page.mjs"))
	cmd.Env = append(cmd.Environ(), "NODE_DIR="+testenv.NodeDir(t), "CHROMIUM="+chromium,
		"CHROMIUM_ARGS="+strings.Join(testenv.ChromiumArgs(), " "), "USER_DATA_DIR="+filepath.Join(dir, "profile"),
		"DONE_URL="+pageURL(done), "LOGIN_URL="+pageURL(login), "LIVE_URL="+pageURL(live), "NOJS_URL="+pageURL(noJS), "SHOT="+shot)
	if shots := os.Getenv("MCPIDP_TEST_RESULT_PAGE_SHOTS"); shots != "" {
		// A folder to keep the screenshots in, for a person to look at.
		cmd.Env = append(cmd.Env, "SHOT_DIR="+shots)
		t.Cleanup(func() { _ = copyFile(shot, filepath.Join(shots, "done.png")) })
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr testenv.SyncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	events := map[string]pageEvent{}
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	for lines.Scan() {
		var ev pageEvent
		require.NoError(t, json.Unmarshal(lines.Bytes(), &ev), lines.Text())
		events[ev.Event] = ev
		// A page is open on a running task: let its tool call finish.
		switch ev.Event {
		case "live-ready":
			slow.Release()
		case "nojs-ready":
			slowNoJS.Release()
		}
	}
	require.NoError(t, cmd.Wait(), "node: %s", stderr.String())

	// The finished task.
	d := events["done"]
	require.Equal(t, 200, d.HTTPStatus)
	require.Contains(t, d.CSP, "script-src 'nonce-")
	require.Empty(t, d.Errors)
	require.Equal(t, "completed", d.Status)
	require.Equal(t, "Completed", d.Badge)
	require.Equal(t, "Completed · Task result", d.Title)
	require.True(t, d.Styled, "the inline style ran under the policy")
	require.LessOrEqual(t, d.ScrollWidth, 390, "nothing is wider than the phone")
	require.Contains(t, d.Answer, "The forecast is sunny with a high of 21 °C.")
	require.Contains(t, d.Answer, "Mon\tsun", "the table is rendered")
	require.NotContains(t, d.Answer, "window.pwned")
	require.Equal(t, []string{`<img src="x">`}, d.AnswerImg, "the answer's image lost its handler")
	require.Equal(t, 1, d.Tools)
	require.True(t, d.Closed, "tool blocks start folded")
	require.True(t, d.OutputHiddenWhileClosed)
	require.True(t, d.Opened, "a tap opens the tool block")
	require.True(t, d.OutputVisible)
	require.Equal(t, "forecast", d.ToolName)
	require.Contains(t, d.Output, pageToolOutput, "the tool's markup is shown as text")
	require.Equal(t, 120, d.Image.Width, "the tool's image loaded: %s", d.Image.Src)
	require.Equal(t, 60, d.Image.Height)
	require.True(t, strings.HasPrefix(d.Image.Src, env.URL+"/r/"), d.Image.Src)
	require.Nil(t, d.Pwned, "no script from the task ran")
	require.Nil(t, d.After.Pwned, "no script from the task ran, also after opening the tool block")
	require.Empty(t, d.After.Violations, "nothing the page needs is blocked, and it tries nothing blocked")
	require.Zero(t, d.Scripts, "a finished page has no script")
	require.Zero(t, d.Refresh)

	checkScreenshot(t, shot, 390, 844)

	// The task waiting for a login.
	l := events["login"]
	require.Equal(t, 200, l.HTTPStatus)
	require.Empty(t, l.Errors)
	require.Equal(t, "awaiting_authorization", l.Status)
	require.Equal(t, "Needs login", l.Badge)
	require.Equal(t, "Log in to continue", l.Headline)
	require.Equal(t, 1, l.Logins)
	require.Equal(t, login.AuthorizationRequired[0].AuthorizationURL, l.Href)
	host := strings.TrimPrefix(strings.TrimSuffix(protected.URL, "/mcp"), "http://")
	require.Equal(t, "Log in to "+host, l.Text)
	require.GreaterOrEqual(t, l.ButtonWidth, 300, "a full-width button on a phone")
	require.GreaterOrEqual(t, l.ButtonHeight, 44, "big enough to tap")
	require.Equal(t, "on", derefOr(l.Live, ""), "the page's script ran under the policy")
	require.Empty(t, l.Violations)
	require.Nil(t, l.Pwned)
	// Through the button, in another tab, the user logged in; the page
	// left open followed the task to its end.
	require.Equal(t, "You've authorized "+host, l.Callback)
	require.True(t, l.Reached, "the login page did not reach completed after the login (now %q)", l.AfterStatus)
	require.Equal(t, "Your notes are ready.", l.Answer)
	require.Zero(t, l.AfterLogins, "no login button once logged in")
	require.Empty(t, l.AfterViolations)
	require.Equal(t, []string{"notes"}, protected.Calls("echo"))

	// The running task, updated in place.
	r := events["live-ready"]
	require.Equal(t, "running", r.Status)
	require.Equal(t, "on", derefOr(r.Live, ""))
	v := events["live"]
	require.True(t, v.Reached, "the page of the running task did not turn to completed by itself (now %q)", v.Status)
	require.Equal(t, "yes", derefOr(v.SameDocument, ""), "updated in place, not reloaded")
	require.Equal(t, "Completed · Task result", v.Title)
	require.Equal(t, "The wait is over.", v.Answer)
	require.Equal(t, 1, v.Tools)
	require.Zero(t, v.Working, "the finished page no longer says it is working")
	require.Empty(t, v.Errors)
	require.Empty(t, v.Violations)

	// Without JavaScript, the meta refresh gets there.
	n := events["nojs-ready"]
	require.Equal(t, "running", n.Status)
	require.Equal(t, 1, n.Refresh, "the running page refreshes itself")
	nj := events["nojs"]
	require.True(t, nj.Reached, "the page without JavaScript did not reach completed (now %q)", nj.Status)
	require.Greater(t, nj.Loads, 1, "it got there by reloading")
	require.Equal(t, "The wait is over.", nj.Answer)
	require.Zero(t, nj.Refresh, "a finished page stays")
}

// checkScreenshot checks that path is a PNG of the size, with something
// drawn on it: its pixels are not all alike.
func checkScreenshot(t *testing.T, path string, width, height int) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err, "the screenshot is a PNG")
	require.Equal(t, image.Rect(0, 0, width, height), img.Bounds())
	var sum, sumSq float64
	dark := 0
	for y := range height {
		for x := range width {
			r, g, b, _ := img.At(x, y).RGBA()
			lum := (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)) / 257
			sum += lum
			sumSq += lum * lum
			if lum < 128 {
				dark++
			}
		}
	}
	n := float64(width * height)
	variance := sumSq/n - (sum/n)*(sum/n)
	require.Greater(t, variance, 100.0, "the screenshot is not blank")
	require.Greater(t, dark, width*height/200, "text is drawn")
}

func derefOr(s *string, or string) string {
	if s == nil {
		return or
	}
	return *s
}

func copyFile(from, to string) error {
	raw, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, raw, 0o644)
}
