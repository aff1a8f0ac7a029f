package agentloop

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/mcpidp/mcpidp/internal/mcpclient"
)

// Image limits. Every image a run keeps is stored with its step and sent
// to the model again on every later turn, so a run keeps at most
// MaxStepImages images and MaxStepImageBytes (decoded) of one tool call, and
// at most MaxRunImages and MaxRunImageBytes over all its steps (a task's
// earlier segments included). Images beyond them are dropped in order and
// the tool output says so.
const (
	MaxStepImages     = 8
	MaxStepImageBytes = 4 << 20
	MaxRunImages      = 20
	MaxRunImageBytes  = 8 << 20
)

// Image is an image a tool returned.
type Image struct {
	// MIMEType is the tool's mimeType for the image (normalized: lowercase,
	// no parameters). It may be any type, so only ViewableImageType ones are
	// shown to the model or inline; serve the others as downloads.
	MIMEType string `json:"mime_type"`
	// Size is the image's size in bytes.
	Size int `json:"size"`
	// Data is the image (base64 in JSON). Task objects leave it out and
	// give URL instead.
	Data []byte `json:"data,omitempty"`
	// URL is where the image can be fetched; set when a task is shown.
	URL string `json:"url,omitempty"`
}

// Viewable reports whether the image may be shown to a model or inline.
func (img Image) Viewable() bool { return mcpclient.ViewableImageType(img.MIMEType) }

func (img Image) dataURL() string {
	return "data:" + img.MIMEType + ";base64," + base64.StdEncoding.EncodeToString(img.Data)
}

// imageBudget counts the images a run holds.
type imageBudget struct {
	counted bool
	images  int
	bytes   int
}

// fit returns how many of the leading images fit within the step and run
// limits, given what the run holds already.
func (b *imageBudget) fit(images []Image) int {
	stepBytes := 0
	for i, img := range images {
		stepBytes += len(img.Data)
		if i+1 > MaxStepImages || stepBytes > MaxStepImageBytes ||
			b.images+i+1 > MaxRunImages || b.bytes+stepBytes > MaxRunImageBytes {
			return i
		}
	}
	return len(images)
}

func (b *imageBudget) add(images []Image) {
	for _, img := range images {
		b.images++
		b.bytes += len(img.Data)
	}
}

// takeResult fills a tool step from a tool's result, keeping the images
// that fit in the run's image limits.
func (r *Run) takeResult(st *Step, res *ToolResult) {
	if !r.images.counted {
		for _, s := range r.Steps {
			r.images.add(s.Images)
		}
		r.images.counted = true
	}
	keep := r.images.fit(res.Images)
	st.Output, st.IsError = res.Text, res.IsError
	if dropped := len(res.Images) - keep; dropped > 0 {
		if res.KeepImagesFunc != nil {
			st.Output = res.KeepImagesFunc(keep)
		} else {
			st.Output += fmt.Sprintf("\n[%d more images over the image limit, not shown]", dropped)
		}
	}
	if keep > 0 {
		st.Images = res.Images[:keep]
		for i := range st.Images {
			st.Images[i].Size = len(st.Images[i].Data)
		}
	}
	st.StructuredContent, st.Resources = res.StructuredContent, res.Resources
	r.images.add(st.Images)
}

// imageMessage gathers the viewable images of the tool messages of one
// model turn into the user message that follows them: Chat Completions
// takes only text in tool messages.
type imageMessage struct {
	parts []contentPart
}

type contentPart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *imageURL `json:"image_url,omitempty"`
}

type imageURL struct {
	URL string `json:"url"`
}

func (m *imageMessage) add(st Step) {
	n := 0
	for _, img := range st.Images {
		if !img.Viewable() || len(img.Data) == 0 {
			continue
		}
		n++
		m.parts = append(m.parts,
			contentPart{Type: "text", Text: fmt.Sprintf("[image %d of tool call %s (%s), %s, %d bytes]", n, st.ToolCallID, st.Function, img.MIMEType, len(img.Data))},
			contentPart{Type: "image_url", ImageURL: &imageURL{URL: img.dataURL()}})
	}
}

// flush appends the user message, if there are images, and starts over.
func (m *imageMessage) flush(out []json.RawMessage) []json.RawMessage {
	if len(m.parts) == 0 {
		return out
	}
	raw, _ := json.Marshal(struct {
		Role    string        `json:"role"`
		Content []contentPart `json:"content"`
	}{Role: "user", Content: m.parts})
	m.parts = nil
	return append(out, raw)
}
