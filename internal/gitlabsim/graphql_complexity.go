package gitlabsim

import (
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// GitLab's query limits (GitlabSchema): an authenticated user's queries may
// score at most 250 (AUTHENTICATED_MAX_COMPLEXITY) and nest at most 20
// fields deep (AUTHENTICATED_MAX_DEPTH); an anonymous one 200 and 15
// (DEFAULT_MAX_COMPLEXITY, DEFAULT_MAX_DEPTH); connections give at most
// 100 nodes a page (maxPageSize).
const (
	defaultGraphQLMaxComplexity = 250
	graphQLMaxDepth             = 20
	anonGraphQLMaxComplexity    = 200
	anonGraphQLMaxDepth         = 15
	// maxQuerySize is GraphqlController::MAX_QUERY_SIZE, in characters.
	maxQuerySize = 10_000
)

// fieldCost is how GitLab scores one field (Types::BaseField and
// Resolvers::BaseResolver): a plain field costs 1, 2 if it calls Gitaly,
// plus its children; an explicit complexity replaces that base. A field
// with a resolver costs its children plus 1 (+1 when sorted, +5 when
// searching, +1 for Gitaly, plus the resolver's own extras); if it is a
// connection, that grows by 1% per requested node (first/last, at most
// the page size), unless it is filtered by iid or iids.
type fieldCost struct {
	fixed      int
	gitaly     bool
	resolver   bool
	connection bool
	extra      func(args map[string]any) int
	// pageSize is the field's own max_page_size; 0 is the schema's.
	pageSize int
}

// fieldCosts holds the fields whose cost is not a plain field's, from
// GitLab's type and resolver definitions (app/graphql/types/*,
// app/graphql/resolvers/*).
var fieldCosts = map[string]fieldCost{
	"Query.project":                           {resolver: true},
	"Query.projects":                          {resolver: true, connection: true},
	"Project.mergeRequest":                    {resolver: true},
	"Project.mergeRequests":                   {resolver: true, connection: true},
	"Project.pipeline":                        {resolver: true},
	"Project.pipelines":                       {resolver: true, connection: true, extra: pipelineFilterCost},
	"MergeRequest.approved":                   {gitaly: true},
	"MergeRequest.mergedAt":                   {fixed: 5},
	"MergeRequest.closedAt":                   {fixed: 5},
	"MergeRequest.reviewers":                  {fixed: 5},
	"MergeRequest.labels":                     {fixed: 5},
	"MergeRequest.diffStats":                  {gitaly: true},
	"MergeRequest.diffStatsSummary":           {gitaly: true},
	"MergeRequest.commits":                    {gitaly: true},
	"MergeRequest.commitsWithoutMergeCommits": {gitaly: true},
	"MergeRequest.notes":                      {resolver: true, connection: true},
	"MergeRequest.userNotesCount":             {resolver: true},
	"Pipeline.jobs":                           {resolver: true, connection: true},
	"Project.issues":                          {resolver: true, connection: true},
	"Issue.notes":                             {resolver: true, connection: true},
	"Project.releases":                        {resolver: true, connection: true},
	"Project.environments":                    {resolver: true, connection: true},
	"Environment.deployments":                 {resolver: true, connection: true},
	"Project.containerRepositories":           {resolver: true, connection: true},
	"ContainerRepositoryDetails.tags":         {resolver: true, connection: true, pageSize: containerTagsPageSize},
}

// pipelineFilterCost is ResolvesPipelines.resolver_complexity's extra.
func pipelineFilterCost(args map[string]any) int {
	n := 0
	if args["sha"] != nil {
		n += 2
	}
	if args["ref"] != nil {
		n += 2
	}
	return n
}

func (c fieldCost) score(child int, args map[string]any) int {
	switch {
	case c.fixed > 0:
		return c.fixed + child
	case !c.resolver:
		base := 1
		if c.gitaly {
			base++
		}
		return base + child
	}
	total := float64(child + 1)
	if args["sort"] != nil {
		total++
	}
	if args["search"] != nil {
		total += 5
	}
	if c.extra != nil {
		total += float64(c.extra(args))
	}
	if c.gitaly {
		total++
	}
	if c.connection && args["iid"] == nil && args["iids"] == nil {
		limit := float64(maxPageSize)
		if c.pageSize > 0 {
			limit = float64(c.pageSize)
		}
		for _, k := range []string{"first", "last"} {
			if n, ok := asInt(args[k]); ok {
				limit = math.Min(limit, float64(n))
			}
		}
		total += total * limit * 0.01
	}
	return int(total) // Ruby's to_i
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case float64:
		return int64(n), true
	}
	return 0, false
}

var analysisSchema = sync.OnceValue(func() *ast.Schema {
	return gqlparser.MustLoadSchema(&ast.Source{Name: "gitlab_schema.graphql", Input: graphqlSchema})
})

// analyze scores a query the way GitLab does before running it. ok is
// false when the query does not validate here; the executor then answers
// with the validation errors.
func analyze(query, operation string, vars map[string]any) (complexity, depth int, ok bool) {
	doc, errs := gqlparser.LoadQuery(analysisSchema(), query)
	if len(errs) > 0 {
		return 0, 0, false
	}
	var op *ast.OperationDefinition
	for _, o := range doc.Operations {
		if operation == "" || o.Name == operation {
			op = o
			break
		}
	}
	if op == nil {
		return 0, 0, false
	}
	complexity, depth = score(op.SelectionSet, vars, 1)
	return complexity, depth, true
}

// Analyze is how GitLab scores query (operation, with vars) before running
// it: its complexity and depth; ok is false when the query does not
// validate against the simulated schema. Clients' tests use it to check
// that their queries fit GitLab's limits.
func Analyze(query, operation string, vars map[string]any) (complexity, depth int, ok bool) {
	return safeAnalyze(query, operation, vars)
}

// score returns the complexity of set and the depth of its deepest field,
// counting set's own fields as level.
func score(set ast.SelectionSet, vars map[string]any, level int) (complexity, depth int) {
	for _, sel := range set {
		var c, d int
		switch s := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(s.Name, "__") {
				continue
			}
			child, childDepth := score(s.SelectionSet, vars, level+1)
			cost := fieldCost{}
			if s.ObjectDefinition != nil {
				cost = fieldCosts[s.ObjectDefinition.Name+"."+s.Name]
			}
			c, d = cost.score(child, s.ArgumentMap(vars)), max(level, childDepth)
		case *ast.InlineFragment:
			c, d = score(s.SelectionSet, vars, level)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				c, d = score(s.Definition.SelectionSet, vars, level)
			}
		}
		complexity += c
		depth = max(depth, d)
	}
	return complexity, depth
}

// limitErrors are graphql-ruby's messages for a query over the limits.
func limitErrors(complexity, depth, maxComplexity, maxDepth int) []string {
	var out []string
	if depth > maxDepth {
		out = append(out, fmt.Sprintf("Query has depth of %d, which exceeds max depth of %d", depth, maxDepth))
	}
	if complexity > maxComplexity {
		out = append(out, fmt.Sprintf("Query has complexity of %d, which exceeds max complexity of %d", complexity, maxComplexity))
	}
	return out
}
