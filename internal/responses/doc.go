// Package responses serves OpenAI's Responses API (POST /v1/responses and
// the stored-response routes) on any OpenAI-compatible upstream, with MCP
// tools run for each end user with their own OAuth logins.
//
// It owns the Responses vocabulary and its translation: a request's input
// items, instructions and tools become a Chat Completions conversation
// (Messages, ParseRequest); the run's recorded steps become output items
// (mcp_list_tools, mcp_call, message, function_call, and mcpidp's
// mcp_authorization_request); a stream carries OpenAI's event names. The
// work itself is done by the parts the chat proxy and tasks use: the
// agentloop step loop with agentloop.UserConnect sessions, and, for
// background responses, a task (task.Service, the task_run worker) whose
// id is the response's. Stored responses live in mcpidp_response.
package responses
