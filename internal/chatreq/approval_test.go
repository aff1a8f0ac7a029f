package chatreq_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/agentloop"
	"github.com/mcpidp/mcpidp/internal/chatreq"
)

func TestParseRequireApproval(t *testing.T) {
	t.Parallel()
	const param = "tools[0].require_approval"
	for raw, want := range map[string]*agentloop.ApprovalPolicy{
		`null`:                                nil,
		`"never"`:                             nil,
		`"always"`:                            {Mode: agentloop.ApprovalAlways},
		`"auto"`:                              {Mode: agentloop.ApprovalAuto},
		`{"always":{"tool_names":["a","b"]}}`: {Always: []string{"a", "b"}},
		`{"never":{"tool_names":["r"]}}`:      {Never: []string{"r"}},
		`{"always":{"tool_names":["w"]},"never":{"tool_names":[]}}`: {Always: []string{"w"}, Never: []string{}},
	} {
		got, err := chatreq.ParseRequireApproval(param, json.RawMessage(raw), defaults())
		require.NoError(t, err, raw)
		require.Equal(t, want, got, raw)
	}
	got, err := chatreq.ParseRequireApproval(param, nil, defaults())
	require.NoError(t, err)
	require.Nil(t, got, "absent means never")

	for raw, wantParam := range map[string]string{
		`"sometimes"`:                           param,
		`"ALWAYS"`:                              param,
		`true`:                                  param,
		`[]`:                                    param,
		`{}`:                                    param,
		`{"maybe":{"tool_names":["a"]}}`:        param + ".maybe",
		`{"always":["a"]}`:                      param + ".always",
		`{"always":{"names":["a"]}}`:            param + ".always",
		`{"always":{"tool_names":[""]}}`:        param + ".always",
		`{"never":{"tool_names":"a"}}`:          param + ".never",
		`{"always":{"tool_names":["a\u0000"]}}`: param + ".always",
	} {
		_, err := chatreq.ParseRequireApproval(param, json.RawMessage(raw), defaults())
		var e *chatreq.Error
		require.True(t, errors.As(err, &e), "%s: %v", raw, err)
		require.Equal(t, http.StatusBadRequest, e.Status, raw)
		require.Equal(t, wantParam, e.Param, raw)
	}
}
