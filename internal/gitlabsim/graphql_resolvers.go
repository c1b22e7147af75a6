package gitlabsim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	graphql "github.com/graph-gophers/graphql-go"
)

// GraphQL resolvers over the world, for graph-gophers/graphql-go. They run
// while serveGraphQL holds s.mu for reading, so they read the world
// directly. Values follow GitLab's GraphQL types: global ids
// ("gid://gitlab/<Model>/<id>"), enums in GitLab's case, times at whole
// seconds (GitLab's Time scalar is Ruby's Time#iso8601), web paths
// relative to the instance.

type gqlReqKey struct{}

// gqlReq is what the resolvers of one request share.
type gqlReq struct {
	s    *Sim
	base string // scheme://host, for webUrl
	anon bool   // no token: GitLab answers as for a guest
}

func reqFrom(ctx context.Context) *gqlReq { return ctx.Value(gqlReqKey{}).(*gqlReq) }

// ---- scalars ----

// gqlTime is GitLab's Time: ISO 8601 at whole seconds, UTC.
type gqlTime time.Time

func (gqlTime) ImplementsGraphQLType(name string) bool { return name == "Time" }

func (t *gqlTime) UnmarshalGraphQL(input any) error {
	s, ok := input.(string)
	if !ok {
		return fmt.Errorf("wrong type for Time: %T", input)
	}
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", time.DateOnly} {
		if v, err := time.Parse(l, s); err == nil {
			*t = gqlTime(v)
			return nil
		}
	}
	return fmt.Errorf("%q is not a valid Time", s)
}

func (t gqlTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format(time.RFC3339) + `"`), nil
}

func timePtr(t time.Time) *gqlTime {
	if t.IsZero() {
		return nil
	}
	v := gqlTime(t)
	return &v
}

// gqlDuration is GitLab's Duration: fractional seconds.
type gqlDuration float64

func (gqlDuration) ImplementsGraphQLType(name string) bool { return name == "Duration" }

func (d *gqlDuration) UnmarshalGraphQL(input any) error {
	switch v := input.(type) {
	case float64:
		*d = gqlDuration(v)
	case int32:
		*d = gqlDuration(v)
	default:
		return fmt.Errorf("wrong type for Duration: %T", input)
	}
	return nil
}

// MarshalJSON writes a Float as graphql-ruby does (17.0, not 17): GitLab's
// Duration coerces every result to a Float.
func (d gqlDuration) MarshalJSON() ([]byte, error) { return fraction(d).MarshalJSON() }

// gid is a global id scalar; the type name says which one.
type gid struct {
	scalar string
	v      string
}

func (g gid) MarshalJSON() ([]byte, error) { return json.Marshal(g.v) }

type jobID struct{ gid }

func (jobID) ImplementsGraphQLType(name string) bool { return name == "JobID" }
func (g *jobID) UnmarshalGraphQL(input any) error    { return g.set(input) }

type noteID struct{ gid }

func (noteID) ImplementsGraphQLType(name string) bool { return name == "NoteID" }
func (g *noteID) UnmarshalGraphQL(input any) error    { return g.set(input) }

type userID struct{ gid }

func (userID) ImplementsGraphQLType(name string) bool { return name == "UserID" }
func (g *userID) UnmarshalGraphQL(input any) error    { return g.set(input) }

type ciPipelineID struct{ gid }

func (ciPipelineID) ImplementsGraphQLType(name string) bool { return name == "CiPipelineID" }
func (g *ciPipelineID) UnmarshalGraphQL(input any) error    { return g.set(input) }

func (g *gid) set(input any) error {
	s, ok := input.(string)
	if !ok || !strings.HasPrefix(s, "gid://gitlab/") {
		return fmt.Errorf("%v is not a valid GitLab ID", input)
	}
	g.v = s
	return nil
}

// model returns the numeric id of a global id of the given model.
func (g gid) model(model string) (int64, bool) {
	rest, ok := strings.CutPrefix(g.v, "gid://gitlab/"+model+"/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil
}

func globalID(model string, id int64) string { return "gid://gitlab/" + model + "/" + itoa(id) }

func strPtr(s string) *string { return &s }

func int32Ptr(n int) *int32 {
	v := int32(n)
	return &v
}

// ---- connections ----

// connArgs are GraphQL's four pagination arguments.
type connArgs struct {
	After  *string
	Before *string
	First  *int32
	Last   *int32
}

// maxPageSize is GitLab's default_max_page_size.
const maxPageSize = 100

// cursorKey orders the items of a connection; its JSON is the cursor, as
// GitLab's keyset cursors are base64 JSON of the ordering columns.
type cursorKey struct {
	At *time.Time `json:"at,omitempty"`
	ID string     `json:"id"`
}

func encodeCursor(k cursorKey) string {
	b, _ := json.Marshal(k)
	return base64.StdEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursorKey, error) {
	var k cursorKey
	b, err := base64.StdEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &k)
	}
	if err != nil {
		return k, fmt.Errorf("Please provide a valid cursor")
	}
	return k, nil
}

type pageInfo struct {
	start, end     *string
	hasNext, hasPr bool
}

func (p *pageInfo) EndCursor() *string    { return p.end }
func (p *pageInfo) StartCursor() *string  { return p.start }
func (p *pageInfo) HasNextPage() bool     { return p.hasNext }
func (p *pageInfo) HasPreviousPage() bool { return p.hasPr }

type edge[T any] struct {
	cursor string
	node   T
}

func (e *edge[T]) Cursor() string { return e.cursor }
func (e *edge[T]) Node() T        { return e.node }

// conn is one page of a connection.
type conn[T any] struct {
	nodes   []T
	cursors []string
	info    pageInfo
	total   int
}

func (c *conn[T]) Nodes() *[]T { return &c.nodes }
func (c *conn[T]) PageInfo() *pageInfo {
	return &c.info
}
func (c *conn[T]) Count() int32 { return int32(c.total) }
func (c *conn[T]) Edges() *[]*edge[T] {
	out := make([]*edge[T], len(c.nodes))
	for i, n := range c.nodes {
		out[i] = &edge[T]{cursor: c.cursors[i], node: n}
	}
	return &out
}

// paginate cuts one page out of items, which are in the connection's
// order; cmp compares a key with the cursor's in that order.
func paginate[T, R any](items []T, a connArgs, key func(T) cursorKey, cmp func(a, b cursorKey) int, wrap func(T) R) (*conn[R], error) {
	return paginateUpTo(items, a, maxPageSize, key, cmp, wrap)
}

// paginateUpTo is paginate for a connection whose field sets its own
// max_page_size, most.
func paginateUpTo[T, R any](items []T, a connArgs, most int, key func(T) cursorKey, cmp func(a, b cursorKey) int, wrap func(T) R) (*conn[R], error) {
	lo, hi := 0, len(items)
	if a.After != nil {
		k, err := decodeCursor(*a.After)
		if err != nil {
			return nil, err
		}
		lo = len(items)
		for i, it := range items {
			if cmp(key(it), k) > 0 {
				lo = i
				break
			}
		}
	}
	if a.Before != nil {
		k, err := decodeCursor(*a.Before)
		if err != nil {
			return nil, err
		}
		for i, it := range items {
			if cmp(key(it), k) >= 0 {
				hi = i
				break
			}
		}
	}
	hi = max(hi, lo)
	limit := most
	if a.First != nil {
		if *a.First < 0 {
			return nil, fmt.Errorf("Argument 'first' on Field must be non-negative")
		}
		limit = min(int(*a.First), most)
	}
	c := &conn[R]{total: len(items)}
	from, to := lo, min(lo+limit, hi)
	if a.Last != nil {
		if *a.Last < 0 {
			return nil, fmt.Errorf("Argument 'last' on Field must be non-negative")
		}
		n := min(int(*a.Last), most)
		if a.First == nil {
			to = hi
		}
		from = max(from, to-n)
	}
	c.info.hasNext = to < hi
	c.info.hasPr = from > lo || (a.After != nil && lo > 0)
	for _, it := range items[from:to] {
		c.nodes = append(c.nodes, wrap(it))
		c.cursors = append(c.cursors, encodeCursor(key(it)))
	}
	if n := len(c.cursors); n > 0 {
		c.info.start, c.info.end = &c.cursors[0], &c.cursors[n-1]
	}
	return c, nil
}

func idKey(id int64) cursorKey { return cursorKey{ID: itoa(id)} }

func timeIDKey(at time.Time, id int64) cursorKey {
	t := at.UTC()
	return cursorKey{At: &t, ID: itoa(id)}
}

func keyID(k cursorKey) int64 {
	n, _ := strconv.ParseInt(k.ID, 10, 64)
	return n
}

func ascByID(a, b cursorKey) int  { return cmpInt(keyID(a), keyID(b)) }
func descByID(a, b cursorKey) int { return -ascByID(a, b) }

func timeOf(k cursorKey) time.Time {
	if k.At == nil {
		return time.Time{}
	}
	return *k.At
}

func ascByTimeID(a, b cursorKey) int {
	if c := timeOf(a).Compare(timeOf(b)); c != 0 {
		return c
	}
	return ascByID(a, b)
}

// ---- Query and Project ----

type gqlQuery struct{}

func (*gqlQuery) Project(ctx context.Context, args struct{ FullPath graphql.ID }) *projectR {
	q := reqFrom(ctx)
	if q.anon {
		return nil // every simulated project is private
	}
	p := q.s.w.byPath[string(args.FullPath)]
	if p == nil || q.s.projectFault(p.fullPath()) != 0 || q.s.projectFault(itoa(p.id)) != 0 {
		return nil
	}
	return &projectR{q: q, p: p}
}

type projectR struct {
	q *gqlReq
	p *project
}

func (r *projectR) ID() graphql.ID       { return graphql.ID(globalID("Project", r.p.id)) }
func (r *projectR) FullPath() graphql.ID { return graphql.ID(r.p.fullPath()) }
func (r *projectR) Name() string         { return r.p.name }
func (r *projectR) Path() string         { return r.p.path }
func (r *projectR) WebUrl() *string      { return strPtr(r.q.base + "/" + r.p.fullPath()) }
func (r *projectR) LastActivityAt() *gqlTime {
	return timePtr(r.p.lastActive)
}

func (r *projectR) MergeRequest(args struct{ Iid string }) *mrR {
	iid, err := strconv.ParseInt(args.Iid, 10, 64)
	if err != nil || iid < 1 || iid > int64(len(r.p.mrs)) {
		return nil
	}
	return &mrR{q: r.q, m: r.p.mrs[iid-1]}
}

type mrsArgs struct {
	Iids          *[]string
	Sort          string
	State         *string
	UpdatedAfter  *gqlTime
	UpdatedBefore *gqlTime
	connArgs
}

func (r *projectR) MergeRequests(args mrsArgs) (*conn[*mrR], error) {
	var list []*mergeRequest
	if args.Iids != nil {
		want := map[int64]bool{}
		for _, s := range *args.Iids {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				want[n] = true
			}
		}
		for n := range want {
			if n >= 1 && n <= int64(len(r.p.mrs)) {
				list = append(list, r.p.mrs[n-1])
			}
		}
	} else {
		list = slices.Clone(r.p.mrs)
	}
	after, before := gqlTimeRange(args.UpdatedAfter, args.UpdatedBefore)
	list = slices.DeleteFunc(list, func(m *mergeRequest) bool {
		if args.State != nil && *args.State != "all" && m.state != *args.State {
			return true
		}
		return !within(m.updatedAt, after, before)
	})
	sort := strings.ToLower(args.Sort)
	at := func(m *mergeRequest) time.Time { return m.createdAt }
	switch {
	case strings.HasPrefix(sort, "updated"):
		at = func(m *mergeRequest) time.Time { return m.updatedAt }
	case strings.HasPrefix(sort, "merged_at"):
		at = func(m *mergeRequest) time.Time { return m.mergedAt }
	case strings.HasPrefix(sort, "closed_at"):
		at = func(m *mergeRequest) time.Time { return m.closedAt }
	}
	key := func(m *mergeRequest) cursorKey { return timeIDKey(at(m), m.id) }
	cmp := ascByTimeID
	if strings.HasPrefix(sort, "title") {
		// Titles are not keys; the position in the sorted list is.
		slices.SortStableFunc(list, func(a, b *mergeRequest) int {
			return cmpOr(strings.Compare(a.title, b.title), cmpInt(a.id, b.id))
		})
		pos := map[int64]int64{}
		for i, m := range list {
			pos[m.id] = int64(i)
		}
		key = func(m *mergeRequest) cursorKey { return idKey(pos[m.id]) }
		cmp = ascByID
	} else {
		slices.SortStableFunc(list, func(a, b *mergeRequest) int { return ascByTimeID(key(a), key(b)) })
	}
	if strings.HasSuffix(sort, "desc") {
		slices.Reverse(list)
		asc := cmp
		cmp = func(a, b cursorKey) int { return -asc(a, b) }
	}
	return paginate(list, args.connArgs, key, cmp, func(m *mergeRequest) *mrR { return &mrR{q: r.q, m: m} })
}

func cmpOr(cs ...int) int {
	for _, c := range cs {
		if c != 0 {
			return c
		}
	}
	return 0
}

type pipelineArgs struct {
	Id  *ciPipelineID
	Iid *graphql.ID
	Sha *string
}

func (r *projectR) Pipeline(args pipelineArgs) *pipelineR {
	var found *pipeline
	switch {
	case args.Id != nil:
		if id, ok := args.Id.model("Ci::Pipeline"); ok {
			found = r.p.pipeByID[id]
		}
	case args.Iid != nil:
		if n, err := strconv.ParseInt(string(*args.Iid), 10, 64); err == nil && n >= 1 && n <= int64(len(r.p.pipes)) {
			found = r.p.pipes[n-1]
		}
	case args.Sha != nil:
		for i := len(r.p.pipes) - 1; i >= 0 && found == nil; i-- {
			if r.p.pipes[i].sha == *args.Sha {
				found = r.p.pipes[i]
			}
		}
	default:
		// The latest pipeline of the default branch's head.
		for i := len(r.p.pipes) - 1; i >= 0 && found == nil; i-- {
			if r.p.pipes[i].ref == r.p.defaultBranch() {
				found = r.p.pipes[i]
			}
		}
	}
	if found == nil {
		return nil
	}
	return &pipelineR{q: r.q, pl: found}
}

type pipelinesArgs struct {
	Status        *string
	Scope         *string
	Ref           *string
	Sha           *string
	Source        *string
	UpdatedAfter  *gqlTime
	UpdatedBefore *gqlTime
	Username      *string
	connArgs
}

// Pipelines lists newest first (by id), as GitLab's PipelinesFinder does;
// updatedAfter and updatedBefore are inclusive, as on the REST listing the
// same finder serves.
func (r *projectR) Pipelines(args pipelinesArgs) (*conn[*pipelineR], error) {
	after, before := gqlTimeRange(args.UpdatedAfter, args.UpdatedBefore)
	var list []*pipeline
	// Walking the updated_at order narrows the time filter by search.
	lo, hi := span(len(r.p.pipesByUpdated), func(i int) time.Time { return r.p.pipesByUpdated[i].updatedAt }, after, before)
	for _, pl := range r.p.pipesByUpdated[lo:hi] {
		switch {
		case args.Status != nil && strings.ToUpper(pl.status) != *args.Status,
			args.Ref != nil && pl.ref != *args.Ref,
			args.Sha != nil && pl.sha != *args.Sha,
			args.Source != nil && pl.source != *args.Source,
			args.Username != nil && pl.user.username != *args.Username:
			continue
		}
		if args.Scope != nil {
			switch *args.Scope {
			case "RUNNING", "PENDING":
				if strings.ToUpper(pl.status) != *args.Scope {
					continue
				}
			case "FINISHED":
				if pl.finishedAt.IsZero() {
					continue
				}
			case "TAGS":
				continue // the simulator makes no tag pipelines
			}
		}
		list = append(list, pl)
	}
	slices.SortFunc(list, func(a, b *pipeline) int { return cmpInt(b.id, a.id) })
	return paginate(list, args.connArgs, func(pl *pipeline) cursorKey { return idKey(pl.id) }, descByID,
		func(pl *pipeline) *pipelineR { return &pipelineR{q: r.q, pl: pl} })
}

// ---- users and labels ----

type userR struct {
	q *gqlReq
	u *user
}

func newUser(q *gqlReq, u *user) *userR {
	if u == nil {
		return nil
	}
	return &userR{q: q, u: u}
}

func (r *userR) ID() userID {
	return userID{gid{v: globalID("User", r.u.id)}}
}
func (r *userR) Username() string { return r.u.username }
func (r *userR) Name() string     { return r.u.name }
func (r *userR) State() string    { return "active" }
func (r *userR) WebUrl() string   { return r.q.base + "/" + r.u.username }
func (r *userR) WebPath() string  { return "/" + r.u.username }

type labelR struct{ title string }

// labelColors are GitLab's suggested label colours, one per label the
// world uses.
var labelColors = []string{"#dc143c", "#6699cc", "#8fbc8f", "#ed9121", "#9400d3", "#ff0000", "#009966", "#808080", "#cd5b45"}

func (r *labelR) index() int {
	if i := slices.Index(allLabels, r.title); i >= 0 {
		return i
	}
	return 0
}
func (r *labelR) ID() graphql.ID       { return graphql.ID(globalID("ProjectLabel", int64(900+r.index()))) }
func (r *labelR) Title() string        { return r.title }
func (r *labelR) Color() string        { return labelColors[r.index()%len(labelColors)] }
func (r *labelR) TextColor() string    { return "#FFFFFF" }
func (r *labelR) Description() *string { return nil }

// ---- merge requests ----

type mrR struct {
	q *gqlReq
	m *mergeRequest
}

func (r *mrR) ID() graphql.ID         { return graphql.ID(globalID("MergeRequest", r.m.id)) }
func (r *mrR) Iid() string            { return itoa(r.m.iid) }
func (r *mrR) ProjectId() int32       { return int32(r.m.p.id) }
func (r *mrR) Title() string          { return r.m.title }
func (r *mrR) Description() *string   { return strPtr(r.m.description) }
func (r *mrR) State() string          { return r.m.state }
func (r *mrR) Draft() bool            { return r.m.draft }
func (r *mrR) SourceBranch() string   { return r.m.sourceBranch }
func (r *mrR) TargetBranch() string   { return r.m.targetBranch }
func (r *mrR) CreatedAt() gqlTime     { return gqlTime(r.m.createdAt) }
func (r *mrR) UpdatedAt() gqlTime     { return gqlTime(r.m.updatedAt) }
func (r *mrR) MergedAt() *gqlTime     { return timePtr(r.m.mergedAt) }
func (r *mrR) ClosedAt() *gqlTime     { return timePtr(r.m.closedAt) }
func (r *mrR) WebUrl() *string        { return strPtr(r.m.webURL(r.q.base)) }
func (r *mrR) WebPath() string        { return r.m.webURL("") }
func (r *mrR) Author() *userR         { return newUser(r.q, r.m.author) }
func (r *mrR) MergeUser() *userR      { return newUser(r.q, r.m.mergedBy) }
func (r *mrR) Approved() bool         { return len(r.m.approvals) >= approvalsRequired }
func (r *mrR) CommitCount() *int32    { return int32Ptr(r.m.nCommits) }
func (r *mrR) UserNotesCount() *int32 { return int32Ptr(userNotes(r.m.notes)) }
func (r *mrR) MergeCommitSha() *string {
	if r.m.mergeCommitSHA == "" {
		return nil
	}
	return strPtr(r.m.mergeCommitSHA)
}

func userConn(q *gqlReq, us []*user, a connArgs) (*conn[*userR], error) {
	return paginate(us, a, func(u *user) cursorKey { return idKey(u.id) }, ascByID, func(u *user) *userR { return newUser(q, u) })
}

// ApprovedBy lists the approvers in the order they approved; the order of
// GitLab's approved_by_users is by approval too.
func (r *mrR) ApprovedBy(a connArgs) (*conn[*userR], error) {
	us := make([]*user, 0, len(r.m.approvals))
	pos := map[int64]int64{}
	for i, ap := range r.m.approvals {
		us = append(us, ap.user)
		pos[ap.user.id] = int64(i)
	}
	return paginate(us, a, func(u *user) cursorKey { return idKey(pos[u.id]) }, ascByID, func(u *user) *userR { return newUser(r.q, u) })
}

func (r *mrR) Reviewers(a connArgs) (*conn[*userR], error) { return userConn(r.q, r.m.reviewers, a) }

func (r *mrR) Labels(a connArgs) (*conn[*labelR], error) {
	return paginate(r.m.labels, a, func(l string) cursorKey { return idKey(int64((&labelR{l}).index())) }, ascByID,
		func(l string) *labelR { return &labelR{title: l} })
}

type diffStatsR struct{ f diffFile }

func (r *diffStatsR) Path() string     { return r.f.path }
func (r *diffStatsR) Additions() int32 { return int32(r.f.additions) }
func (r *diffStatsR) Deletions() int32 { return int32(r.f.deletions) }

func (r *mrR) DiffStats(args struct{ Path *string }) *[]*diffStatsR {
	out := []*diffStatsR{}
	for _, f := range r.m.diffFiles() {
		if args.Path == nil || *args.Path == f.path {
			out = append(out, &diffStatsR{f: f})
		}
	}
	return &out
}

type diffSummaryR struct{ files []diffFile }

func (r *diffSummaryR) sum() (a, d int) {
	for _, f := range r.files {
		a, d = a+f.additions, d+f.deletions
	}
	return a, d
}
func (r *diffSummaryR) Additions() int32 { a, _ := r.sum(); return int32(a) }
func (r *diffSummaryR) Deletions() int32 { _, d := r.sum(); return int32(d) }
func (r *diffSummaryR) Changes() int32   { a, d := r.sum(); return int32(a + d) }
func (r *diffSummaryR) FileCount() int32 { return int32(len(r.files)) }

func (r *mrR) DiffStatsSummary() *diffSummaryR { return &diffSummaryR{files: r.m.diffFiles()} }

type commitR struct {
	q *gqlReq
	p *project
	c commitInfo
}

func (r *commitR) Sha() string             { return r.c.sha }
func (r *commitR) ShortId() string         { return r.c.sha[:8] }
func (r *commitR) Title() *string          { return strPtr(r.c.title) }
func (r *commitR) Message() *string        { return strPtr(r.c.message) }
func (r *commitR) AuthorName() *string     { return strPtr(r.c.author.name) }
func (r *commitR) AuthorEmail() *string    { return strPtr(r.c.author.username + "@example.com") }
func (r *commitR) AuthoredDate() *gqlTime  { return timePtr(r.c.authoredAt) }
func (r *commitR) CommittedDate() *gqlTime { return timePtr(r.c.committedAt) }
func (r *commitR) WebPath() string         { return "/" + r.p.fullPath() + "/-/commit/" + r.c.sha }
func (r *commitR) WebUrl() string          { return r.q.base + r.WebPath() }

// Commits lists the commits of the MR's latest diff, newest first, as the
// REST endpoint does; none of them is a merge commit.
func (r *mrR) Commits(a connArgs) (*conn[*commitR], error) {
	m := r.m
	refs := make([]commitRef, m.nCommits)
	for k := range refs {
		refs[k] = commitRef{m: m, k: m.nCommits - 1 - k, rebased: m.state == "merged"}
	}
	return paginate(refs, a, func(c commitRef) cursorKey { return idKey(int64(m.nCommits - 1 - c.k)) }, ascByID,
		func(c commitRef) *commitR { return &commitR{q: r.q, p: m.p, c: m.p.commit(c)} })
}

func (r *mrR) CommitsWithoutMergeCommits(a connArgs) (*conn[*commitR], error) { return r.Commits(a) }

type noteR struct {
	q *gqlReq
	n *note
}

func (r *noteR) ID() noteID         { return noteID{gid{v: globalID("Note", r.n.id)}} }
func (r *noteR) Body() string       { return r.n.body }
func (r *noteR) System() bool       { return r.n.system }
func (r *noteR) Internal() *bool    { v := false; return &v }
func (r *noteR) Author() *userR     { return newUser(r.q, r.n.author) }
func (r *noteR) CreatedAt() gqlTime { return gqlTime(r.n.createdAt) }
func (r *noteR) UpdatedAt() gqlTime { return gqlTime(r.n.updatedAt) }
func (r *noteR) Resolvable() bool   { return false }
func (r *noteR) Resolved() bool     { return false }
func (r *noteR) Url() *string {
	if r.n.mr == nil {
		return nil
	}
	return strPtr(fmt.Sprintf("%s#note_%d", r.n.mr.webURL(r.q.base), r.n.id))
}

type notesArgs struct {
	Filter string
	connArgs
}

// Notes lists oldest first, as GitLab's NotesFinder does.
func (r *mrR) Notes(args notesArgs) (*conn[*noteR], error) { return notesConn(r.q, r.m.notes, args) }

func notesConn(q *gqlReq, notes []*note, args notesArgs) (*conn[*noteR], error) {
	list := slices.Clone(notes)
	if args.Filter != "ALL_NOTES" {
		system := args.Filter == "ONLY_ACTIVITY"
		list = slices.DeleteFunc(list, func(n *note) bool { return n.system != system })
	}
	slices.SortStableFunc(list, func(a, b *note) int { return cmpOr(a.createdAt.Compare(b.createdAt), cmpInt(a.id, b.id)) })
	return paginate(list, args.connArgs, func(n *note) cursorKey { return timeIDKey(n.createdAt, n.id) }, ascByTimeID,
		func(n *note) *noteR { return &noteR{q: q, n: n} })
}

// ---- pipelines and jobs ----

type pipelineR struct {
	q  *gqlReq
	pl *pipeline
}

func (r *pipelineR) ID() graphql.ID       { return graphql.ID(globalID("Ci::Pipeline", r.pl.id)) }
func (r *pipelineR) Iid() string          { return itoa(r.pl.iid) }
func (r *pipelineR) BeforeSha() *string   { return strPtr(r.pl.beforeSHA) }
func (r *pipelineR) Ref() *string         { return strPtr(r.pl.ref) }
func (r *pipelineR) Status() string       { return strings.ToUpper(r.pl.status) }
func (r *pipelineR) Source() *string      { return strPtr(r.pl.source) }
func (r *pipelineR) Name() *string        { return nil }
func (r *pipelineR) Active() bool         { return r.pl.status == "running" || r.pl.status == "pending" }
func (r *pipelineR) CreatedAt() gqlTime   { return gqlTime(r.pl.createdAt) }
func (r *pipelineR) UpdatedAt() gqlTime   { return gqlTime(r.pl.updatedAt) }
func (r *pipelineR) StartedAt() *gqlTime  { return timePtr(r.pl.startedAt) }
func (r *pipelineR) FinishedAt() *gqlTime { return timePtr(r.pl.finishedAt) }
func (r *pipelineR) CommittedAt() *gqlTime {
	return timePtr(r.pl.p.committedAt(r.pl.head))
}
func (r *pipelineR) FailureReason() *string { return nil }
func (r *pipelineR) User() *userR           { return newUser(r.q, r.pl.user) }
func (r *pipelineR) Path() *string {
	return strPtr(fmt.Sprintf("/%s/-/pipelines/%d", r.pl.p.fullPath(), r.pl.id))
}

func (r *pipelineR) Sha(args struct{ Format *string }) *string {
	if args.Format != nil && *args.Format == "SHORT" {
		return strPtr(r.pl.sha[:8])
	}
	return strPtr(r.pl.sha)
}

// Duration and QueuedDuration are the REST detail's duration and
// queued_duration: whole seconds, the latter as a Duration Float.
func (r *pipelineR) Duration() *int32 {
	if r.pl.finishedAt.IsZero() {
		return nil
	}
	return int32Ptr(int(r.pl.finishedAt.Sub(r.pl.startedAt) / time.Second))
}

func (r *pipelineR) QueuedDuration() *gqlDuration {
	q := r.pl.queuedSeconds()
	if q == nil {
		return nil
	}
	d := gqlDuration(*q)
	return &d
}

type jobsArgs struct {
	Statuses *[]string
	Retried  *bool
	JobKind  *string
	connArgs
}

// jobConn is CiJobConnection, whose count takes a limit (GitLab's
// LimitedCountableConnectionType).
type jobConn struct{ *conn[*jobR] }

func (c jobConn) Count(args struct{ Limit int32 }) int32 {
	return min(int32(c.total), args.Limit)
}

// Jobs lists newest first (pipeline.statuses_order_id_desc). The simulator
// never retries a job, so every job is the latest of its name.
func (r *pipelineR) Jobs(args jobsArgs) (*jobConn, error) {
	var list []job
	for _, j := range r.pl.jobs() {
		if args.Statuses != nil && !slices.Contains(*args.Statuses, strings.ToUpper(j.status)) {
			continue
		}
		if args.Retried != nil && *args.Retried {
			continue
		}
		if args.JobKind != nil && *args.JobKind != "BUILD" {
			continue
		}
		list = append(list, j)
	}
	slices.SortFunc(list, func(a, b job) int { return cmpInt(b.id, a.id) })
	c, err := paginate(list, args.connArgs, func(j job) cursorKey { return idKey(j.id) }, descByID,
		func(j job) *jobR { return &jobR{q: r.q, pl: r.pl, j: j} })
	if err != nil {
		return nil, err
	}
	return &jobConn{c}, nil
}

type jobR struct {
	q  *gqlReq
	pl *pipeline
	j  job
}

type stageR struct{ name string }

func (s *stageR) Name() *string { return strPtr(s.name) }

func (r *jobR) ID() *jobID           { return &jobID{gid{v: globalID("Ci::Build", r.j.id)}} }
func (r *jobR) Name() *string        { return strPtr(r.j.name) }
func (r *jobR) Kind() string         { return "BUILD" }
func (r *jobR) Status() *string      { return strPtr(strings.ToUpper(r.j.status)) }
func (r *jobR) Stage() *stageR       { return &stageR{name: r.j.stage} }
func (r *jobR) AllowFailure() bool   { return false }
func (r *jobR) Retried() *bool       { v := false; return &v }
func (r *jobR) CreatedAt() gqlTime   { return gqlTime(r.j.createdAt) }
func (r *jobR) StartedAt() *gqlTime  { return timePtr(r.j.startedAt) }
func (r *jobR) FinishedAt() *gqlTime { return timePtr(r.j.finishedAt) }
func (r *jobR) RefName() *string     { return strPtr(r.pl.ref) }
func (r *jobR) ShortSha() string     { return r.pl.sha[:8] }
func (r *jobR) Tags() *[]string      { return &[]string{"docker"} }
func (r *jobR) WebPath() *string {
	return strPtr(fmt.Sprintf("/%s/-/jobs/%d", r.pl.p.fullPath(), r.j.id))
}

// QueuedAt is when the job became pending: queued_duration before it
// started.
func (r *jobR) QueuedAt() *gqlTime {
	if r.j.queued < 0 || r.j.startedAt.IsZero() {
		return nil
	}
	return timePtr(r.j.startedAt.Add(-time.Duration(r.j.queued * float64(time.Second))))
}

// Duration is whole seconds: GitLab's GraphQL Int of the job's
// fractional duration, which graphql-ruby truncates.
func (r *jobR) Duration() *int32 {
	if r.j.finishedAt.IsZero() {
		return nil
	}
	return int32Ptr(int(r.j.finishedAt.Sub(r.j.startedAt).Seconds()))
}

func (r *jobR) QueuedDuration() *gqlDuration {
	if r.j.queued < 0 {
		return nil
	}
	d := gqlDuration(math.Round(r.j.queued*1000) / 1000)
	return &d
}

// failureMessages are GitLab's CommitStatusPresenter callout messages for
// the failure reasons the world uses; script_failure has none.
var failureMessages = map[string]string{
	"unknown_failure":          "There is an unknown failure, please try again",
	"api_failure":              "There has been an API failure, please try again",
	"stuck_or_timeout_failure": "There has been a timeout failure or the job got stuck. Check your timeout limits or try again",
	"runner_system_failure":    "There has been a runner system failure, please try again",
}

func (r *jobR) FailureMessage() *string {
	if r.j.status != "failed" {
		return nil
	}
	if m, ok := failureMessages[r.j.failureReason]; ok {
		return strPtr(m)
	}
	return nil
}
