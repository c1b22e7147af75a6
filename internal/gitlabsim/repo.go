package gitlabsim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The repository is not stored commit by commit: a commit is named by a
// commitRef and its details (sha, message, dates, stats, diff) are derived
// from the merge request it belongs to and the project's seed. Only the
// order of the default branch is kept, as p.main.
//
// Merge requests are merged with a semi-linear history (merge_method
// rebase_merge): at merge the source branch is rebased onto main, so its
// commits land there with new shas committed at the merge time (authored
// dates kept), followed by a merge commit. Commits therefore reach main in
// committed_date order, and listing main with since= misses nothing.

// commitRef names one commit.
type commitRef struct {
	m       *mergeRequest // nil: the project's root commit
	k       int           // 0..nCommits-1, or mergeK for the merge commit
	rebased bool          // the rebased copy that landed on main
}

const mergeK = 1 << 10

// mainEntry is a commit on the default branch.
type mainEntry struct {
	at time.Time
	c  commitRef
}

// buildMain lays the merged MRs' commits onto main in merge order.
func (p *project) buildMain() {
	for _, m := range p.mrs {
		if m.state == "merged" {
			p.main = appendMerge(p.main, m)
		}
	}
	slices.SortStableFunc(p.main, func(a, b mainEntry) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmpInt(a.c.m.id, b.c.m.id)
	})
	for i, e := range p.main {
		if e.c.m.mainIdx < 0 {
			e.c.m.mainIdx = i
		}
	}
}

func appendMerge(main []mainEntry, m *mergeRequest) []mainEntry {
	for k := range m.nCommits {
		main = append(main, mainEntry{m.mergedAt, commitRef{m: m, k: k, rebased: true}})
	}
	return append(main, mainEntry{m.mergedAt, commitRef{m: m, k: mergeK}})
}

// merge lands a just-merged m on main; its merge time is the newest.
func (p *project) merge(m *mergeRequest) {
	m.mainIdx = len(p.main)
	p.main = appendMerge(p.main, m)
}

// mainRef is the commit at index i of main; -1 is the root commit.
func (p *project) mainRef(i int) commitRef {
	if i < 0 {
		return commitRef{}
	}
	return p.main[i].c
}

// headAt is the index in main of the branch head at time t (-1: the root).
// An MR's entries share its merge time and the merge commit sorts last, so
// the head is always a merge commit or the root.
func (p *project) headAt(t time.Time) int {
	return sortSearch(len(p.main), func(i int) bool { return p.main[i].at.After(t) }) - 1
}

// prevHead is the head before the merge whose merge commit is at i.
func (p *project) prevHead(i int) int {
	if i < 0 {
		return -1
	}
	return p.main[i].c.m.mainIdx - 1
}

// commitInfo is a commit's details.
type commitInfo struct {
	sha, title, message     string
	author, committer       *user
	authoredAt, committedAt time.Time
	parents                 []string
	additions, deletions    int
}

// sha derives a stable 40-hex sha.
func (p *project) sha(a, b uint64) string {
	const digits = "0123456789abcdef"
	var buf [48]byte
	for i := range 3 {
		x := mix(p.seed, a, b*4+uint64(i))
		for j := range 16 {
			buf[i*16+j] = digits[x&15]
			x >>= 4
		}
	}
	return string(buf[:40])
}

var followUps = []string{"Add tests", "Address review comments", "Fix lint warnings", "Update documentation", "Handle the empty case"}

func (p *project) commit(c commitRef) commitInfo {
	m := c.m
	if m == nil {
		return commitInfo{
			sha: p.sha(0, 0), title: "Initial commit", message: "Initial commit\n",
			author: p.owner, committer: p.owner, authoredAt: p.root, committedAt: p.root,
			parents: []string{}, additions: 120,
		}
	}
	if c.k == mergeK {
		title := fmt.Sprintf("Merge branch '%s' into '%s'", m.sourceBranch, m.targetBranch)
		a, d := m.diffStats()
		return commitInfo{
			sha: m.mergeCommitSHA, title: title,
			message: fmt.Sprintf("%s\n\n%s\n\nSee merge request %s!%d\n", title, strings.TrimPrefix(m.title, "Draft: "), p.fullPath(), m.iid),
			author:  m.mergedBy, committer: m.mergedBy, authoredAt: m.mergedAt, committedAt: m.mergedAt,
			parents:   []string{p.shaOf(p.mainRef(m.mainIdx - 1)), p.shaOf(commitRef{m: m, k: m.nCommits - 1, rebased: true})},
			additions: a, deletions: d,
		}
	}
	title := strings.TrimPrefix(m.title, "Draft: ")
	if c.k < m.nCommits-1 {
		title = followUps[(int(m.id)+c.k)%len(followUps)] + " for " + strings.ToLower(title[:1]) + title[1:]
	}
	committed := m.headAt.Add(-time.Duration(m.nCommits-1-c.k) * m.commitGap)
	info := commitInfo{
		title: title, message: title + "\n", author: m.author, committer: m.author,
		authoredAt: committed.Add(-time.Duration(mix(p.seed, uint64(m.id), uint64(c.k))%3600) * time.Second), committedAt: committed,
	}
	info.additions, info.deletions = m.commitStats(c.k)
	var parent string
	switch {
	case c.k > 0:
		parent = p.shaOf(commitRef{m: m, k: c.k - 1, rebased: c.rebased})
	case c.rebased:
		parent = p.shaOf(p.mainRef(m.mainIdx - 1))
	default:
		parent = p.shaOf(p.mainRef(p.headAt(m.headAt.Add(-time.Duration(m.nCommits) * m.commitGap))))
	}
	info.parents = []string{parent}
	info.sha = p.shaOf(c)
	if c.rebased {
		info.committer, info.committedAt = m.mergedBy, m.mergedAt
	}
	return info
}

// shaOf is c's sha alone, without deriving the rest.
func (p *project) shaOf(c commitRef) string {
	m := c.m
	switch {
	case m == nil:
		return p.sha(0, 0)
	case c.k == mergeK:
		return m.mergeCommitSHA
	case c.rebased:
		return p.sha(uint64(m.id), uint64(c.k)*2+1)
	case c.k == m.nCommits-1:
		return m.sha
	}
	return p.sha(uint64(m.id), uint64(c.k)*2)
}

// committedAt is c's committed_date alone.
func (p *project) committedAt(c commitRef) time.Time {
	m := c.m
	switch {
	case m == nil:
		return p.root
	case c.k == mergeK || c.rebased:
		return m.mergedAt
	}
	return m.headAt.Add(-time.Duration(m.nCommits-1-c.k) * m.commitGap)
}

// mrHead is the head of m's source branch: after a merge, the rebased
// commits.
func (m *mergeRequest) head() commitRef {
	return commitRef{m: m, k: m.nCommits - 1, rebased: m.state == "merged"}
}

// diffFile is one file of an MR's diff, derived from the MR's id.
type diffFile struct {
	path                 string
	newFile              bool
	additions, deletions int
}

var codePaths = []string{"main.go", "internal/config/config.go", "internal/server/handler.go", "internal/store/store.go", "README.md", "docs/usage.md", "internal/auth/token.go", "Makefile", ".gitlab-ci.yml", "internal/cache/cache.go"}

func (m *mergeRequest) diffFiles() []diffFile {
	h := mix(m.p.seed, uint64(m.id), 77)
	n := m.nCommits + int(h%3)
	out := make([]diffFile, n)
	for i := range out {
		x := mix(m.p.seed, uint64(m.id), uint64(100+i))
		f := diffFile{path: codePaths[(int(h>>8)+i)%len(codePaths)], additions: 1 + int(x%40), deletions: int(x>>8) % 20}
		if i >= len(codePaths) {
			f.path = fmt.Sprintf("internal/gen/file%d.go", i)
		}
		if x>>20%5 == 0 {
			f.newFile, f.deletions = true, 0
			f.path = fmt.Sprintf("internal/%s/%s_%d.go", slug(strings.Fields(m.title)[len(strings.Fields(m.title))-1]), "new", i)
		}
		out[i] = f
	}
	return out
}

// commitStats attributes file i of the diff to commit i mod nCommits, so
// the commits' stats add up to the MR's diff.
func (m *mergeRequest) commitStats(k int) (add, del int) {
	for i, f := range m.diffFiles() {
		if i%m.nCommits == k {
			add += f.additions
			del += f.deletions
		}
	}
	return add, del
}

func (m *mergeRequest) diffStats() (add, del int) {
	for _, f := range m.diffFiles() {
		add += f.additions
		del += f.deletions
	}
	return add, del
}

// unified is f as a unified diff hunk: its - and + lines are exactly its
// deletions and additions.
func (f diffFile) unified() string {
	var b strings.Builder
	ctx := 3
	if f.newFile {
		ctx = 0
		fmt.Fprintf(&b, "@@ -0,0 +1,%d @@\n", f.additions)
	} else {
		fmt.Fprintf(&b, "@@ -10,%d +10,%d @@ func init() {\n", ctx+f.deletions, ctx+f.additions)
	}
	for i := range ctx {
		fmt.Fprintf(&b, " \t// context line %d\n", i+1)
	}
	for i := range f.deletions {
		fmt.Fprintf(&b, "-\told := legacy(%d)\n", i)
	}
	for i := range f.additions {
		fmt.Fprintf(&b, "+\tvalue := compute(%d)\n", i)
	}
	return b.String()
}

// branch is a branch: main, or an MR's source branch. Branches are never
// deleted (force_remove_source_branch is off), so a merged MR's branch
// stays, with merged: true.
type branch struct {
	name    string
	head    commitRef
	mr      *mergeRequest
	merged  bool
	release bool // the protected release branch
}

func (p *project) branches() []branch {
	out := make([]branch, 0, len(p.mrs)+2)
	out = append(out, branch{name: p.defaultBranch(), head: p.mainRef(len(p.main) - 1)})
	if p.relBranch != "" {
		// Its head is on main, so GitLab calls it merged.
		out = append(out, branch{name: p.relBranch, head: p.mainRef(p.relIdx), merged: true, release: true})
	}
	for _, m := range p.mrs {
		out = append(out, branch{name: m.sourceBranch, head: m.head(), mr: m, merged: m.state == "merged"})
	}
	return out
}

// gitTag is an annotated tag on a merge commit of main.
type gitTag struct {
	name      string
	idx       int // in p.main
	createdAt time.Time
	author    *user
}

type release struct {
	tag        *gitTag
	author     *user
	createdAt  time.Time
	releasedAt time.Time
}

func (rl *release) updatedAt() time.Time {
	if rl.releasedAt.After(rl.createdAt) {
		return rl.releasedAt
	}
	return rl.createdAt
}

// historyTags tags a handful of merge commits v1.0.0, v1.1.0, ... and
// releases most of them.
func (w *world) historyTags(r *rand.Rand, p *project, now time.Time) {
	var merges []int
	for i, e := range p.main {
		if e.c.k == mergeK {
			merges = append(merges, i)
		}
	}
	n := min(len(merges), 2+r.IntN(4))
	for k := range n {
		idx := merges[(k+1)*len(merges)/(n+1)]
		if k > 0 && idx <= p.gitTags[len(p.gitTags)-1].idx {
			continue
		}
		w.tagRelease(r, p, idx, earliest(ms(p.main[idx].at.Add(time.Duration(1+r.IntN(120))*time.Minute)), now), k%3 != 2)
	}
}

// historyReleaseBranch cuts the release branch release/1.0 from the first
// tag, once it is there, and points some of the merge requests opened
// after it that were never merged at it: backports under review or
// given up. Nothing is merged into the release branch, so its head stays
// the tagged commit of main.
func (w *world) historyReleaseBranch(r *rand.Rand, p *project) {
	if len(p.gitTags) == 0 {
		return
	}
	t := p.gitTags[0]
	p.relBranch, p.relIdx = "release/"+strings.TrimSuffix(strings.TrimPrefix(t.name, "v"), ".0"), t.idx
	for _, m := range p.mrs {
		if m.state != "merged" && m.createdAt.After(t.createdAt) && r.IntN(5) == 0 {
			m.targetBranch = p.relBranch
		}
	}
}

func (w *world) tagRelease(r *rand.Rand, p *project, idx int, at time.Time, withRelease bool) {
	t := &gitTag{name: fmt.Sprintf("v1.%d.0", len(p.gitTags)), idx: idx, createdAt: at, author: w.pickUser(r)}
	p.gitTags = append(p.gitTags, t)
	if withRelease {
		p.releases = append(p.releases, &release{tag: t, author: t.author, createdAt: at, releasedAt: at})
	}
	if rp := firstRepo(p); rp != nil {
		rp.push(t.name, at)
	}
}

func firstRepo(p *project) *registryRepo {
	if len(p.repos) == 0 {
		return nil
	}
	return p.repos[0]
}

// advanceRelease now and then tags main's head, if it is newer than the
// last tag, and releases it.
func (w *world) advanceRelease(r *rand.Rand, p *project, now time.Time) {
	if r.IntN(4) != 0 || len(p.main) == 0 {
		return
	}
	head := len(p.main) - 1
	if n := len(p.gitTags); n > 0 && p.gitTags[n-1].idx >= head {
		return
	}
	w.tagRelease(r, p, head, p.next(now), true)
}

// historyCommitNotes comments on a few merge commits of main.
func (w *world) historyCommitNotes(r *rand.Rand, p *project, now time.Time, notes []*note) []*note {
	if len(p.main) == 0 {
		return notes
	}
	for range 1 + r.IntN(3) {
		i := p.headAt(p.main[r.IntN(len(p.main))].at)
		at := earliest(ms(p.main[i].at.Add(time.Duration(1+r.IntN(600))*time.Minute)), now)
		n := &note{p: p, commit: i + 1, body: comments[r.IntN(len(comments))], author: w.pickUser(r), createdAt: at, updatedAt: at}
		p.commitNotes = append(p.commitNotes, n)
		notes = append(notes, n)
	}
	slices.SortStableFunc(p.commitNotes, func(a, b *note) int { return a.createdAt.Compare(b.createdAt) })
	return notes
}
