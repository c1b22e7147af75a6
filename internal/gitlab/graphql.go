package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// GraphQL modes (Config.GraphQL).
const (
	// GraphQLAuto fetches the details of merge requests and pipelines in
	// batches through GitLab's GraphQL API, and falls back to REST where
	// GraphQL is not available or refuses a query.
	GraphQLAuto = "auto"
	// GraphQLOff fetches everything through the REST API.
	GraphQLOff = "off"
)

// Why a GraphQL answer could not be used. The caller falls back to REST
// for what it asked; only errGraphQLUnavailable does so for good.
var (
	// errGraphQLUnavailable: the instance has no GraphQL API for us (404,
	// 403, 405, 501 at /api/graphql).
	errGraphQLUnavailable = errors.New("GraphQL API not available")
	// errGraphQLRefused: GitLab would not run the query as sent (over its
	// complexity or depth limit, or too large); a smaller one may pass.
	errGraphQLRefused = errors.New("GraphQL query refused")
	// errGraphQLQuery: the query does not fit this instance's schema (an
	// older GitLab lacking a field); it will not work later either.
	errGraphQLQuery = errors.New("GraphQL query not understood")
	// errGraphQLPartial: GitLab ran the query but some fields failed; the
	// answer is incomplete and is not used.
	errGraphQLPartial = errors.New("GraphQL answer incomplete")
)

// graphQLError carries GitLab's messages with one of the reasons above.
type graphQLError struct {
	kind error
	msgs []string
}

func (e *graphQLError) Error() string {
	return fmt.Sprintf("%v: %s", e.kind, strings.Join(e.msgs, "; "))
}

func (e *graphQLError) Unwrap() error { return e.kind }

type graphQLEnvelope struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

// graphQL runs one query at <GitLab>/api/graphql through the same transport
// as REST calls (limiter, retries, timeouts, audit) and decodes its data
// into out. Besides the package's errors for failed HTTP calls it returns
// a *graphQLError wrapping one of the errGraphQL* reasons.
func (c *Client) graphQL(ctx context.Context, desc, query string, vars map[string]any, out any) error {
	if !c.graphqlSeen.Load() {
		c.graphqlProbe.Lock()
		defer c.graphqlProbe.Unlock()
		if c.graphqlGone.Load() {
			return &graphQLError{kind: errGraphQLUnavailable, msgs: []string{"GitLab answered an earlier GraphQL query as unavailable"}}
		}
	}
	err := c.graphQLCall(ctx, desc, query, vars, out)
	if errors.Is(err, errGraphQLUnavailable) {
		c.graphqlGone.Store(true)
	} else if err == nil || errors.As(err, new(*graphQLError)) {
		c.graphqlSeen.Store(true)
	}
	return err
}

// graphQLCall is graphQL's request and the reading of its answer.
func (c *Client) graphQLCall(ctx context.Context, desc, query string, vars map[string]any, out any) error {
	var env graphQLEnvelope
	_, err := c.call(ctx, desc, "", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
		req, err := c.gl.NewRequest(http.MethodPost, "", gl.GraphQLQuery{Query: query, Variables: vars}, o)
		if err != nil {
			return nil, err
		}
		// client-go puts every request under /api/v4/; GraphQL lives beside it.
		req.URL.Path = strings.TrimSuffix(strings.Replace(req.URL.Path, "/api/v4", gl.GraphQLAPIEndpoint, 1), "/")
		req.URL.RawPath = ""
		env = graphQLEnvelope{}
		return c.gl.Do(req, &env)
	})
	if err != nil {
		var e *apiError
		if errors.As(err, &e) {
			switch e.status {
			case http.StatusNotFound, http.StatusForbidden, http.StatusMethodNotAllowed, http.StatusNotImplemented:
				return &graphQLError{kind: errGraphQLUnavailable, msgs: []string{e.msg}}
			case http.StatusBadRequest, http.StatusUnprocessableEntity:
				// "Query too large", invalid variables.
				return &graphQLError{kind: errGraphQLRefused, msgs: []string{e.msg}}
			}
		}
		return err
	}
	data := strings.TrimSpace(string(env.Data))
	noData := data == "" || data == "null"
	if len(env.Errors) > 0 {
		msgs := make([]string, len(env.Errors))
		kind := errGraphQLQuery
		for i, e := range env.Errors {
			msgs[i] = c.redact(e.Message)
			if refusal(e.Message) {
				kind = errGraphQLRefused
			}
		}
		if !noData && kind != errGraphQLRefused {
			kind = errGraphQLPartial
		}
		return &graphQLError{kind: kind, msgs: msgs}
	}
	if noData {
		return &graphQLError{kind: errGraphQLQuery, msgs: []string{"answer without data"}}
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return c.fail(nil, "gitlab: reading %s from %s: %v", desc, c.base, err)
	}
	return nil
}

// refusal tells GitLab's (graphql-ruby's) refusals of a query over its
// limits from other errors.
func refusal(msg string) bool {
	return strings.HasPrefix(msg, "Query has complexity of") || strings.HasPrefix(msg, "Query has depth of") ||
		strings.Contains(msg, "Query too large") || strings.Contains(msg, "Timeout on ")
}

// graphQLPlan is how one kind of batched query is sent: page sizes that
// start at GitLab's maximum and shrink when GitLab refuses a query as too
// complex. The level reached is kept for the client's life, so later pages
// do not pay for the same refusals; past the last level, and after a
// query this GitLab does not understand, the kind goes by REST.
type graphQLPlan struct {
	name  string
	level atomic.Int32
	off   atomic.Bool
	once  sync.Once
}

// graphQLLevels are the (outer, nested) page sizes tried in turn.
var graphQLLevels = [][2]int{{perPage, perPage}, {50, 50}, {20, 20}, {5, 10}}

func (g *graphQLPlan) sizes() (outer, nested int, ok bool) {
	l := int(g.level.Load())
	if g.off.Load() || l >= len(graphQLLevels) {
		return 0, 0, false
	}
	return graphQLLevels[l][0], graphQLLevels[l][1], true
}

// shrink moves to the next level after a refusal at level l.
func (g *graphQLPlan) shrink(l int) { g.level.CompareAndSwap(int32(l), int32(l+1)) }

func (c *Client) disable(g *graphQLPlan, why error) {
	g.off.Store(true)
	g.once.Do(func() {
		c.log.Warn("GitLab refuses labtrail's GraphQL query; fetching "+g.name+" details by REST", "reason", why.Error())
	})
}

// graphQLFor reports whether g's details are fetched by GraphQL.
func (c *Client) graphQLFor(g *graphQLPlan) bool {
	if !c.graphql || c.graphqlOff.Load() {
		return false
	}
	_, _, ok := g.sizes()
	return ok
}

// graphQLFailed decides what a failed batch means beyond itself: an
// instance without GraphQL is remembered for the client's life (and
// logged once), a query it does not understand turns g off. It returns
// err when the failure must end the fetch (auth, rate limit, GitLab down),
// nil when the caller should fall back to REST for the batch.
func (c *Client) graphQLFailed(g *graphQLPlan, err error) error {
	switch {
	case errors.Is(err, errGraphQLUnavailable):
		if c.graphqlOff.CompareAndSwap(false, true) {
			c.log.Warn("GitLab's GraphQL API is not available; using REST from now on", "url", c.base, "reason", err.Error())
		}
	case errors.Is(err, errGraphQLQuery):
		c.disable(g, err)
	case errors.Is(err, errGraphQLPartial):
		c.log.Warn("GitLab's GraphQL answer was incomplete; fetching these "+g.name+" by REST", "reason", err.Error())
	case errors.Is(err, errGraphQLRefused):
		// The caller shrinks the batch or falls back.
	default:
		return err
	}
	return nil
}

// gidNumber is the numeric id at the end of a GitLab global id
// ("gid://gitlab/Ci::Build/42" is 42).
func gidNumber(gid string) (int64, error) {
	i := strings.LastIndexByte(gid, '/')
	n, err := strconv.ParseInt(gid[i+1:], 10, 64)
	if err != nil || !strings.HasPrefix(gid, "gid://gitlab/") {
		return 0, fmt.Errorf("gitlab: %q is not a GitLab global id", gid)
	}
	return n, nil
}

// gqlTime reads GitLab's GraphQL Time (ISO 8601, whole seconds); null is
// the zero time.
type gqlTime struct{ time.Time }

func (t *gqlTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	t.Time = v.UTC()
	return nil
}

func (t *gqlTime) ptr() *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	v := t.Time
	return &v
}

type gqlPageInfo struct {
	HasNextPage bool   `json:"hasNextPage"`
	EndCursor   string `json:"endCursor"`
}

type gqlUser struct {
	Username string `json:"username"`
}

func (u *gqlUser) name() string {
	if u == nil {
		return ""
	}
	return u.Username
}

// instanceURL is the GitLab web URL that paths from GraphQL (webPath)
// hang off: the project's web_url less its path, which is what REST's
// web_url fields are built from; the configured URL if that fails.
func (c *Client) instanceURL(p Project) string {
	if p.WebURL != "" && p.Path != "" {
		if base, ok := strings.CutSuffix(strings.TrimRight(p.WebURL, "/"), "/"+p.Path); ok {
			return base
		}
	}
	return c.base
}

// seconds truncates t to the whole second: the precision GitLab's GraphQL
// API gives times in, kept for the times that may come from it (notes,
// jobs, pipeline start and finish, approvals, first commits).
func seconds(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Truncate(time.Second)
}
