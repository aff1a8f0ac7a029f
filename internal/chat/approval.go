package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/chatreq"
	"github.com/mcpidp/mcpidp/internal/llm"
	"github.com/mcpidp/mcpidp/internal/secretbox"
)

// Chat stays stateless across processes: an approval request's id is the
// call it asks about (function, server, tool, arguments, the model's tool
// call id, an expiry) sealed with the deployment's keyring, with the
// tenant and user as associated data. Only this deployment can make one, it
// opens only for the same tenant and user, and the arguments in it are the
// ones that will run: a resend cannot approve anything that was not asked.
// The resend then runs the approved calls (and tells the model of the
// denied ones) as the continuation of the model turn that asked for them,
// without asking the model again.

// approvalIDPrefix starts every approval request id.
const approvalIDPrefix = "mcpr_"

// maxApprovalResponses bounds mcp_approval_responses.
const maxApprovalResponses = 64

// maxApprovalReason bounds a response's reason (bytes).
const maxApprovalReason = 2000

// ApprovalRequest is one entry of "mcp_approval_requests": an MCP tool
// call held back by its server's require_approval. The client approves or
// denies it by resending the request with "mcp_approval_responses".
type ApprovalRequest struct {
	ID        string          `json:"id"`
	ServerURL string          `json:"server_url"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

// approvalResponse is one entry of "mcp_approval_responses".
type approvalResponse struct {
	ID      string `json:"approval_request_id"`
	Approve *bool  `json:"approve"`
	Reason  string `json:"reason"`
}

// heldCall is what an approval request id seals.
type heldCall struct {
	Function   string          `json:"f"`
	ServerURL  string          `json:"s"`
	Tool       string          `json:"t"`
	Arguments  json.RawMessage `json:"a"`
	ToolCallID string          `json:"c"`
	Expires    int64           `json:"e"`
}

// answered is an approval response whose id opened.
type answered struct {
	id      string // the approval request id
	call    heldCall
	approve bool
	reason  string
}

// parseApprovalResponses reads "mcp_approval_responses" (shape only; the
// ids are opened once the user is known).
func parseApprovalResponses(raw json.RawMessage) ([]approvalResponse, error) {
	if raw == nil || chatreq.IsNull(raw) {
		return nil, nil
	}
	var out []approvalResponse
	if json.Unmarshal(raw, &out) != nil {
		return nil, chatreq.Invalid("mcp_approval_responses", `mcp_approval_responses must be an array like [{"approval_request_id":"mcpr_…","approve":true,"reason":"…"}]`)
	}
	if len(out) > maxApprovalResponses {
		return nil, chatreq.Invalid("mcp_approval_responses", fmt.Sprintf("mcp_approval_responses has more than %d entries", maxApprovalResponses))
	}
	seen := map[string]bool{}
	for i, r := range out {
		param := fmt.Sprintf("mcp_approval_responses[%d]", i)
		switch {
		case !strings.HasPrefix(r.ID, approvalIDPrefix):
			return nil, chatreq.Invalid(param+".approval_request_id", param+".approval_request_id must be the id of an entry of mcp_approval_requests")
		case r.Approve == nil:
			return nil, chatreq.Missing(param + ".approve")
		case len(r.Reason) > maxApprovalReason:
			return nil, chatreq.Invalid(param+".reason", fmt.Sprintf("%s.reason is longer than %d bytes", param, maxApprovalReason))
		case seen[r.ID]:
			return nil, chatreq.Invalid(param+".approval_request_id", param+".approval_request_id is listed twice")
		}
		if err := chatreq.CheckText(param+".reason", r.Reason); err != nil {
			return nil, err
		}
		seen[r.ID] = true
	}
	return out, nil
}

// approvals seals and opens approval request ids for one tenant's user.
type approvals struct {
	keyring *secretbox.Keyring
	ad      []byte
	ttl     time.Duration
	now     func() time.Time
}

func newApprovals(k *secretbox.Keyring, tenant, user string, ttl time.Duration) *approvals {
	return &approvals{keyring: k, ad: []byte("mcp-approval\x00" + tenant + "\x00" + user), ttl: ttl, now: time.Now}
}

func (a *approvals) seal(c *agentloop.ApprovalCall) (string, error) {
	plain, err := json.Marshal(heldCall{Function: c.Function, ServerURL: c.ServerURL, Tool: c.Tool, Arguments: c.Arguments,
		ToolCallID: c.ToolCallID, Expires: a.now().Add(a.ttl).Unix()})
	if err != nil {
		return "", err
	}
	sealed, err := a.keyring.Seal(plain, a.ad)
	if err != nil {
		return "", err
	}
	return approvalIDPrefix + sealed, nil
}

// open checks every response against what this deployment asked this user,
// and the tools this request offers.
func (a *approvals) open(responses []approvalResponse, tools agentloop.Tools, policies map[string]agentloop.ApprovalPolicy) ([]answered, error) {
	out := make([]answered, 0, len(responses))
	for i, r := range responses {
		param := fmt.Sprintf("mcp_approval_responses[%d].approval_request_id", i)
		plain, err := a.keyring.Open(strings.TrimPrefix(r.ID, approvalIDPrefix), a.ad)
		var c heldCall
		if err != nil || json.Unmarshal(plain, &c) != nil {
			return nil, chatreq.Invalid(param, param+" was not issued by this deployment for this user")
		}
		if a.now().Unix() >= c.Expires {
			return nil, chatreq.Invalid(param, param+" has expired; send the request without it to be asked again")
		}
		if server, tool, ok := tools.Resolve(c.Function); !ok || server != c.ServerURL || tool != c.Tool {
			return nil, chatreq.Invalid(param, fmt.Sprintf("%s: the tool %s of %s is not offered by this request's MCP servers", param, c.Tool, c.ServerURL))
		}
		if _, ok := policies[c.ServerURL]; !ok {
			// Without its policy the call would run whatever the answer.
			return nil, chatreq.Invalid(param, fmt.Sprintf("%s: send the same require_approval for %s as in the request that asked", param, c.ServerURL))
		}
		out = append(out, answered{id: r.ID, call: c, approve: *r.Approve, reason: r.Reason})
	}
	return out, nil
}

// resumeStep is the model turn the answered calls continue: the calls the
// model asked for when they were held back.
func resumeStep(ans []answered) []agentloop.Step {
	if len(ans) == 0 {
		return nil
	}
	st := agentloop.Step{Type: agentloop.StepModel}
	for _, a := range ans {
		st.ToolCalls = append(st.ToolCalls, llm.ToolCall{ID: a.call.ToolCallID, Type: "function",
			Function: llm.FunctionCall{Name: a.call.Function, Arguments: string(a.call.Arguments)}})
	}
	return []agentloop.Step{st}
}

// approveFunc decides a held-back call from the answered responses, and
// names a new one by its sealed id.
func (a *approvals) approveFunc(ans []answered) agentloop.ApproveFunc {
	return func(_ context.Context, c *agentloop.ApprovalCall) (agentloop.Verdict, error) {
		for _, r := range ans {
			// The answered calls are the run's first model turn (resumeStep).
			if c.Turn == 0 && r.call.ToolCallID == c.ToolCallID && r.call.Function == c.Function && string(r.call.Arguments) == string(c.Arguments) {
				return agentloop.Verdict{Decided: true, Approved: r.approve, Reason: r.reason}, nil
			}
		}
		id, err := a.seal(c)
		if err != nil {
			return agentloop.Verdict{}, fmt.Errorf("error naming approval request: %w", err)
		}
		c.ID = id
		return agentloop.Verdict{}, nil
	}
}

// approvalMarkdown is the content of an answer that waits for approvals.
func approvalMarkdown(reqs []ApprovalRequest) string {
	var b strings.Builder
	if len(reqs) == 1 {
		b.WriteString("This tool call waits for your approval:\n\n")
	} else {
		b.WriteString("These tool calls wait for your approval:\n\n")
	}
	for _, q := range reqs {
		fmt.Fprintf(&b, "- `%s` on %s with arguments `%s`\n", q.Name, q.ServerURL, q.Arguments)
	}
	b.WriteString("\nApprove or deny, then send your message again.")
	return b.String()
}

// errNoKeyring answers require_approval where the engine cannot name
// approval requests.
var errNoKeyring = &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "unsupported_parameter", Param: "tools",
	Message: "require_approval is not available: this proxy has no encryption keyring"}
