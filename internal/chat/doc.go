// Package chat is mcpidp's sync engine: it answers OpenAI chat completion
// requests in which "tools" may name remote MCP servers, listing their
// tools, offering them to the model as function tools, calling them on
// behalf of the request's "user" and showing the calls in the answer, with
// a login link when that user has not logged in to a server yet. It also
// reads the request fields only mcpidp knows ("max_steps", "stop_when",
// "mcp_output") and answers in OpenAI's error shape.
//
// Two front ends run the same Engine: mcpidp's POST /v1/chat/completions
// (package api) and the public mcpproxy.Proxy, an http.RoundTripper for Go
// programs. The engine stays here, under internal/, because its
// configuration names mcpidp's own parts (the model client, the OAuth
// engine); programs outside this module use mcpproxy.New instead.
package chat
