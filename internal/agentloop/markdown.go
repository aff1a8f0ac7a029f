package agentloop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// Markdown renders steps as a transcript: the model's text as it is, and
// each tool call as a collapsible <details> block with its arguments and
// output.
func Markdown(steps []Step) string {
	var b strings.Builder
	for _, st := range steps {
		switch st.Type {
		case StepModel:
			if strings.TrimSpace(st.Content) != "" {
				b.WriteString(strings.TrimSpace(st.Content))
				b.WriteString("\n\n")
			}
		case StepTool:
			b.WriteString(ToolMarkdown(st))
		case StepSampling:
			b.WriteString(SamplingMarkdown(st))
		}
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

// MaxInlineImageBytes bounds the images Markdown shows inline as data URIs
// when they have no URL (chat answers, a task's output.markdown): larger
// ones get a placeholder, so that with MaxRunImages an answer carries at
// most a few hundred kilobytes of images.
const MaxInlineImageBytes = 8 << 10

// ToolMarkdown renders one tool step. Its images follow the output: an
// image with a URL as a link to it (viewable types as markdown images,
// others as download links), a small viewable one inline as a data URI,
// any other as a placeholder.
func ToolMarkdown(st Step) string {
	var b strings.Builder
	name := st.Tool
	if name == "" {
		name = st.Function
	}
	icon := "🔧"
	if st.IsError {
		icon = "⚠️"
	}
	fmt.Fprintf(&b, "<details><summary>%s %s (%s)</summary>\n\n", icon, escapeHTML(name), escapeHTML(Host(st.ServerURL)))
	b.WriteString("Arguments:\n\n")
	b.WriteString(fence(prettyJSON(st.Arguments), "json"))
	if st.IsError {
		b.WriteString("Error:\n\n")
	} else {
		b.WriteString("Output:\n\n")
	}
	b.WriteString(fence(st.Output, ""))
	for i, img := range st.Images {
		b.WriteString(imageMarkdown(i, img))
	}
	b.WriteString("</details>\n\n")
	return b.String()
}

// SamplingMarkdown renders a sampling step: the server that asked, what it
// asked (the createMessage request) and the model's answer.
func SamplingMarkdown(st Step) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<details><summary>🧠 sampling requested by %s</summary>\n\n", escapeHTML(Host(st.ServerURL)))
	b.WriteString("Request:\n\n")
	b.WriteString(fence(prettyJSON(st.Arguments), "json"))
	b.WriteString("Answer:\n\n")
	b.WriteString(fence(st.Content, ""))
	b.WriteString("</details>\n\n")
	return b.String()
}

func imageMarkdown(i int, img Image) string {
	label := fmt.Sprintf("image %d, %s, %d bytes", i+1, img.MIMEType, img.Size)
	switch {
	case img.URL != "" && img.Viewable():
		return fmt.Sprintf("![%s](%s)\n\n", label, img.URL)
	case img.URL != "":
		return fmt.Sprintf("[%s (download)](%s)\n\n", label, img.URL)
	case img.Viewable() && len(img.Data) > 0 && len(img.Data) <= MaxInlineImageBytes:
		return fmt.Sprintf("![%s](%s)\n\n", label, img.dataURL())
	default:
		return fmt.Sprintf("_[%s — not shown]_\n\n", label)
	}
}

// Host is how a server is named to people: its host name.
func Host(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil || u.Host == "" {
		return serverURL
	}
	return u.Host
}

// LoginMarkdown is the markdown link that asks a user to log in to a server:
// the one wording a task's result page and a chat answer both show.
func LoginMarkdown(serverURL, authorizationURL string) string {
	return "[" + loginText(serverURL) + "](" + authorizationURL + ")"
}

// LoginPrompt is the plain-text form of LoginMarkdown, for a task's
// authorization callback.
func LoginPrompt(serverURL, authorizationURL string) string {
	return loginText(serverURL) + " so the task can go on: " + authorizationURL
}

func loginText(serverURL string) string { return "Log in to " + Host(serverURL) }

// fence wraps s in a code fence longer than any backtick run inside it, so
// tool output can never break out of its block.
func fence(s, lang string) string {
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			if run > longest {
				longest = run
			}
		} else {
			run = 0
		}
	}
	f := strings.Repeat("`", max(3, longest+1))
	return f + lang + "\n" + strings.TrimRight(s, "\n") + "\n" + f + "\n\n"
}

func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "{}"
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

// escapeHTML escapes &, < and >. It is called for every tool call a chat answer shows; building a
// strings.Replacer for each was most of what that rendering allocated.
func escapeHTML(s string) string {
	if !strings.ContainsAny(s, "&<>") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
