package worker

import "regexp"

// queryInURL matches the query string of an http(s) URL inside a message.
// A trailing ':', ',', '.', ';' or ')' ends the message's sentence, not the
// query ("…?key=x: 401").
var queryInURL = regexp.MustCompile(`(https?://[^\s?#"'<>]+)\?[^\s#"'<>]*[^\s#"'<>:,.;)]`)

// redactQueries hides the query strings of URLs in a message a task shows
// publicly (its error on the result page): some MCP servers take their key
// in the URL.
func redactQueries(s string) string {
	return queryInURL.ReplaceAllString(s, "$1?…")
}
