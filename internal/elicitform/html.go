package elicitform

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// Page is what the HTML form shows.
type Page struct {
	// Message is the server's message to the user.
	Message string
	// Server is how the asking server is named to people (its host).
	Server string
	// Error, when set, is shown above the form (the last submission was refused).
	Error string
	// Done, when set, replaces the form with this text (the input is answered or expired).
	Done string
	// Values are what the form is filled with: the last submission, else the defaults.
	Values url.Values
	// URL, for a URL-mode input, is the page the user must visit; the form then has only the
	// buttons "I'm done" (accept) and "Decline".
	URL string
}

type field struct {
	Property
	Label    string
	Required bool
	Value    string
	Checked  bool
	Selected map[string]bool
	Input    string // the <input> type of a free field
	Step     string
}

var page = template.Must(template.New("form").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Input requested by {{.Server}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
label{display:block;font-weight:600;margin-top:1rem}.desc{color:#555;font-weight:400;font-size:.9em}
input[type=text],input[type=email],input[type=url],input[type=date],input[type=datetime-local],input[type=number],select{width:100%;padding:.4rem;box-sizing:border-box}
.error{background:#fee;border:1px solid #c00;padding:.5rem}.buttons{margin-top:1.5rem;display:flex;gap:.5rem}button{padding:.5rem 1rem}</style></head>
<body><h1>{{.Server}} asks for input</h1>
<p>{{.Message}}</p>
{{if .Done}}<p><strong>{{.Done}}</strong></p>{{else}}
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
<form method="post">
{{if .URL}}<p><a href="{{.URL}}" target="_blank" rel="noopener noreferrer">{{.URL}}</a></p><p>Open the link, finish there, then come back.</p>{{end}}
{{range .Fields}}
{{if eq .Type "boolean"}}<label><input type="checkbox" name="{{.Name}}" value="true"{{if .Checked}} checked{{end}}> {{.Label}}{{if .Required}} *{{end}}</label>
{{else if eq .Type "array"}}<fieldset><legend><strong>{{.Label}}{{if .Required}} *{{end}}</strong></legend>{{$f := .}}{{range .Options}}<label class="desc"><input type="checkbox" name="{{$f.Name}}" value="{{.Value}}"{{if index $f.Selected .Value}} checked{{end}}> {{.Title}}</label>{{end}}</fieldset>
{{else if .Options}}<label for="f_{{.Name}}">{{.Label}}{{if .Required}} *{{end}}</label><select id="f_{{.Name}}" name="{{.Name}}">{{if not .Required}}<option value=""></option>{{end}}{{$f := .}}{{range .Options}}<option value="{{.Value}}"{{if index $f.Selected .Value}} selected{{end}}>{{.Title}}</option>{{end}}</select>
{{else}}<label for="f_{{.Name}}">{{.Label}}{{if .Required}} *{{end}}</label><input id="f_{{.Name}}" type="{{.Input}}" name="{{.Name}}" value="{{.Value}}"{{if .Step}} step="{{.Step}}"{{end}}{{if .Required}} required{{end}}>
{{end}}{{if .Description}}<div class="desc">{{.Description}}</div>{{end}}
{{end}}
<div class="buttons"><button type="submit" name="_action" value="accept">{{if .URL}}I'm done{{else}}Submit{{end}}</button>
<button type="submit" name="_action" value="decline" formnovalidate>Decline</button></div>
</form>{{end}}
</body></html>
`))

// Render writes the form page for the schema.
func (s *Schema) Render(w io.Writer, p Page) error {
	fields := make([]field, 0, len(s.Properties))
	values := p.Values
	for _, prop := range s.Properties {
		f := field{Property: prop, Label: prop.Title, Selected: map[string]bool{}}
		if f.Label == "" {
			f.Label = prop.Name
		}
		for _, r := range s.Required {
			f.Required = f.Required || r == prop.Name
		}
		var vals []string
		if values != nil {
			vals = values[prop.Name]
		} else {
			vals = defaultStrings(prop.Default)
		}
		if len(vals) > 0 {
			f.Value = vals[0]
		}
		for _, v := range vals {
			f.Selected[v] = true
		}
		f.Checked = f.Value == "true"
		switch {
		case prop.Type == "number":
			f.Input, f.Step = "number", "any"
		case prop.Type == "integer":
			f.Input, f.Step = "number", "1"
		case prop.Format == "email":
			f.Input = "email"
		case prop.Format == "uri":
			f.Input = "url"
		case prop.Format == "date":
			f.Input = "date"
		default:
			f.Input = "text"
		}
		fields = append(fields, f)
	}
	return page.Execute(w, struct {
		Page
		Fields []field
	}{p, fields})
}

func defaultStrings(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return []string{strconv.FormatBool(b)}
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return []string{n.String()}
	}
	return nil
}

// FromForm turns a submitted form into content for Apply: empty fields are left out (so the
// defaults apply), an unchecked checkbox is false, numbers are parsed.
func (s *Schema) FromForm(values url.Values) (json.RawMessage, error) {
	out := map[string]any{}
	for _, p := range s.Properties {
		vals := values[p.Name]
		switch p.Type {
		case "boolean":
			out[p.Name] = len(vals) > 0 && vals[0] == "true"
		case "array":
			if len(vals) > 0 {
				out[p.Name] = vals
			}
		case "number", "integer":
			if len(vals) == 0 || strings.TrimSpace(vals[0]) == "" {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(vals[0]), 64)
			if err != nil {
				return nil, &ContentError{Field: p.Name, Message: fmt.Sprintf("must be a number, not %q", vals[0])}
			}
			out[p.Name] = f
		default:
			if len(vals) == 0 || vals[0] == "" {
				continue
			}
			out[p.Name] = vals[0]
		}
	}
	return json.Marshal(out)
}
