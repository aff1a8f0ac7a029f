package worker

import "github.com/mcpidp/mcpidp/internal/redact"

// redactQueries hides the query strings (and userinfo) of URLs in a
// message a task shows publicly (its error on the result page): some MCP
// servers take their key in the URL.
func redactQueries(s string) string { return redact.Text(s) }
