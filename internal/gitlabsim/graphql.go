package gitlabsim

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"io"
	"net/http"
	"sync"

	graphql "github.com/graph-gophers/graphql-go"
)

// GitLab's GraphQL API at /api/graphql, for the queries labtrail sends:
// projects' merge requests (approvals, diff stats, commits, notes) and
// pipelines with their jobs. It is a real GraphQL server
// (graph-gophers/graphql-go) over the schema in graphql_schema.graphql,
// which uses GitLab's type, field, argument and enum names. Like GitLab it
//
//   - sits behind the same throttle, faults, latency and counting as
//     /api/v4 (Stats path "POST /api/graphql");
//   - answers a request without a token as a guest (who sees none of the
//     simulated projects, which are private: project is null), and one
//     with an unknown token 401 {"errors":[{"message":"Invalid token"}]};
//   - refuses queries over 10,000 characters (422 "Query too large"), and
//     scores every query as GitLab does (graphql_complexity.go): over
//     GraphQLMaxComplexity (default 250) or 20 levels deep (anonymous:
//     200 and 15) it answers 200 with graphql-ruby's error and no data;
//   - gives connections at most 100 nodes a page, with keyset cursors;
//   - writes times at whole seconds, as GitLab's Time scalar does, and
//     global ids ("gid://gitlab/Ci::Pipeline/1").
//
// With Options.NoGraphQL (or SetGraphQL(false)) it answers as a GitLab
// whose GraphQL feature flag is off: 404 {"errors":[{"message":"Not found"}]}.

//go:embed graphql_schema.graphql
var graphqlSchema string

var executableSchema = sync.OnceValue(func() *graphql.Schema {
	return graphql.MustParseSchema(graphqlSchema, &gqlQuery{})
})

// SetGraphQL turns the GraphQL endpoint on or off at run time.
func (s *Sim) SetGraphQL(on bool) { s.graphqlOff.Store(!on) }

// SetGraphQLMaxComplexity changes the most complex query the endpoint
// runs; 0 restores GitLab's 250.
func (s *Sim) SetGraphQLMaxComplexity(n int) { s.graphqlMaxComplexity.Store(int64(n)) }

func (s *Sim) maxComplexity() int {
	if n := s.graphqlMaxComplexity.Load(); n > 0 {
		return int(n)
	}
	return defaultGraphQLMaxComplexity
}

type graphqlRequest struct {
	Query         string          `json:"query"`
	OperationName string          `json:"operationName"`
	Variables     json.RawMessage `json:"variables"`
}

func graphqlErrors(w http.ResponseWriter, status int, msgs ...string) {
	errs := make([]map[string]string, len(msgs))
	for i, m := range msgs {
		errs[i] = map[string]string{"message": m}
	}
	writeJSON(w, status, map[string]any{"errors": errs})
}

func (s *Sim) serveGraphQL(w http.ResponseWriter, r *http.Request) {
	s.count(r.Method + " /api/graphql")
	token, authed, ok := s.admit(w, r)
	if !ok {
		return
	}
	if token != "" && !authed {
		graphqlErrors(w, http.StatusUnauthorized, "Invalid token")
		return
	}
	if authed && !s.canReadAPI() {
		insufficientScope(w, "api read_api")
		return
	}
	if s.graphqlOff.Load() {
		graphqlErrors(w, http.StatusNotFound, "Not found")
		return
	}

	var req graphqlRequest
	switch r.Method {
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil && len(bytes.TrimSpace(body)) > 0 && bytes.TrimSpace(body)[0] != '{' {
			// Apollo-style batches are not simulated.
			graphqlErrors(w, http.StatusUnprocessableEntity, "Unexpected parameter: batched queries are not supported")
			return
		}
		if err != nil || json.Unmarshal(body, &req) != nil {
			graphqlErrors(w, http.StatusUnprocessableEntity, "Unexpected end of input")
			return
		}
	case http.MethodGet:
		q := r.URL.Query()
		req.Query, req.OperationName = q.Get("query"), q.Get("operationName")
		if v := q.Get("variables"); v != "" {
			req.Variables = json.RawMessage(v)
		}
	default:
		graphqlErrors(w, http.StatusNotFound, "Not found!")
		return
	}
	if len(req.Query) > maxQuerySize {
		graphqlErrors(w, http.StatusUnprocessableEntity, "Query too large")
		return
	}
	vars, err := decodeVariables(req.Variables)
	if err != nil {
		graphqlErrors(w, http.StatusUnprocessableEntity, "Variables are invalid JSON: "+err.Error())
		return
	}
	if complexity, depth, ok := safeAnalyze(req.Query, req.OperationName, vars); ok {
		maxComplexity, maxDepth := s.maxComplexity(), graphQLMaxDepth
		if token == "" {
			maxComplexity, maxDepth = min(maxComplexity, anonGraphQLMaxComplexity), anonGraphQLMaxDepth
		}
		if msgs := limitErrors(complexity, depth, maxComplexity, maxDepth); len(msgs) > 0 {
			graphqlErrors(w, http.StatusOK, msgs...)
			return
		}
	}

	base := "http://gitlab.sim"
	if r.Host != "" {
		base = "http://" + r.Host
	}
	ctx := context.WithValue(r.Context(), gqlReqKey{}, &gqlReq{s: s, base: base, anon: token == ""})
	s.mu.RLock()
	resp := executableSchema().Exec(ctx, req.Query, req.OperationName, vars)
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, resp)
}

// decodeVariables accepts GitLab's forms: an object, a JSON string holding
// one, or nothing.
func decodeVariables(raw json.RawMessage) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return map[string]any{}, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		if s == "" {
			return map[string]any{}, nil
		}
		raw = json.RawMessage(s)
	}
	var vars map[string]any
	if err := json.Unmarshal(raw, &vars); err != nil {
		return nil, err
	}
	if vars == nil {
		vars = map[string]any{}
	}
	return vars, nil
}

// safeAnalyze is analyze for queries that validate; gqlparser panics on
// some values it has already accepted, and such a query is left to the
// executor to refuse.
func safeAnalyze(query, operation string, vars map[string]any) (complexity, depth int, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return analyze(query, operation, vars)
}
