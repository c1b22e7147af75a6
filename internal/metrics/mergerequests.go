package metrics

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/labtrail/labtrail/internal/store"
)

// SlowestOpenLimit is how many open merge requests SlowestOpen lists.
const SlowestOpenLimit = 10

// MergeRequestFlow is where the window's merged merge requests spent their
// time.
type MergeRequestFlow struct {
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Bucket Bucket    `json:"bucket"`
	Merged int       `json:"merged"`
	// Coding is created_at minus first_commit_at (0 if negative), over the
	// merge requests whose first commit is known.
	Coding Summary `json:"coding"`
	// Pickup is the first review minus created_at; the first review is the
	// earliest of the first approval and the first non-system note by
	// someone other than the author, if it came at or before the merge.
	// Merge requests merged without one are left out of Pickup and Review.
	Pickup Summary `json:"pickup"`
	// Review is merged_at minus the first review.
	Review Summary `json:"review"`
	// Deploy is the finished_at of the earliest production deployment that
	// shipped it minus merged_at; merge requests not shipped yet are left
	// out.
	Deploy Summary `json:"deploy"`
	// Cycle is merged_at minus first_commit_at (created_at when unknown).
	Cycle       Summary            `json:"cycle"`
	Throughput  []MergedBucket     `json:"throughput"`
	Size        Size               `json:"size"`
	ByAuthor    []MergedGroup      `json:"by_author"`
	ByProject   []MergedGroup      `json:"by_project"`
	SlowestOpen []OpenMergeRequest `json:"slowest_open"`
}

// MergedBucket counts the merges in one bucket.
type MergedBucket struct {
	Start  time.Time `json:"start"`
	Merged int       `json:"merged"`
}

// Size is the median size of the merged merge requests: lines added plus
// deleted, and files changed.
type Size struct {
	MedianLines *float64 `json:"median_lines"`
	MedianFiles *float64 `json:"median_files"`
}

// MergedGroup is the merges of one author or project.
type MergedGroup struct {
	Name      string `json:"name"`
	ProjectID int64  `json:"project_id,omitempty"`
	Merged    int    `json:"merged"`
	// CycleMedianSeconds is the median Cycle of its merges.
	CycleMedianSeconds *float64 `json:"cycle_median_seconds"`
}

// OpenMergeRequest is an open merge request and how long it has been
// open.
type OpenMergeRequest struct {
	ID          string    `json:"id"`
	ProjectID   int64     `json:"project_id"`
	ProjectPath string    `json:"project_path"`
	IID         int64     `json:"iid"`
	Title       string    `json:"title"`
	Author      string    `json:"author"`
	WebURL      string    `json:"web_url"`
	CreatedAt   time.Time `json:"created_at"`
	AgeSeconds  float64   `json:"age_seconds"`
}

// MergeRequests computes the merge-request flow of q's window: the merge
// requests merged in it.
func (m *Metrics) MergeRequests(ctx context.Context, q Query) (MergeRequestFlow, error) {
	q, err := q.normalize()
	if err != nil {
		return MergeRequestFlow{}, err
	}
	// The merges, the open merge requests and the deployments are read at
	// once: none needs another, and the merges, the widest, take as long
	// as the rest together.
	var (
		mrs  []store.MergeFlowFact
		open []store.MergeRequestFact
		w    windowDeploys
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if mrs, err = inHalves(gctx, q.filter(), m.st.MergeFlow); err != nil {
			return fmt.Errorf("merged merge requests: %w", err)
		}
		return nil
	})
	g.Go(func() (err error) {
		if open, err = m.st.OpenMergeRequests(gctx, q.ProjectIDs, SlowestOpenLimit); err != nil {
			return fmt.Errorf("open merge requests: %w", err)
		}
		return nil
	})
	g.Go(func() (err error) {
		w, err = m.windowDeployments(gctx, q)
		return err
	})
	if err := g.Wait(); err != nil {
		return MergeRequestFlow{}, err
	}
	ship, err := m.shippingAfter(ctx, q, w, mrs)
	if err != nil {
		return MergeRequestFlow{}, err
	}

	out := MergeRequestFlow{Since: q.Since, Until: q.Until, Bucket: q.Bucket}
	s := newSeries(q.Bucket, q.Since, q.Until)
	throughput := make([]int, len(s.starts))
	// Each holds a value of most merge requests: sized once, not grown.
	coding, pickup, review := make([]float64, 0, len(mrs)), make([]float64, 0, len(mrs)), make([]float64, 0, len(mrs))
	deploy, cycle := make([]float64, 0, len(mrs)), make([]float64, 0, len(mrs))
	lines, files := make([]float64, 0, len(mrs)), make([]float64, 0, len(mrs))
	type group struct {
		name    string
		project int64
		cycles  []float64
	}
	authors := make(map[string]*group)
	projects := make(map[int64]*group)
	for _, mr := range mrs {
		if mr.MergedAt.IsZero() {
			continue
		}
		out.Merged++
		if i := s.at(mr.MergedAt); i >= 0 {
			throughput[i]++
		}
		if !mr.FirstCommitAt.IsZero() {
			coding = append(coding, seconds(mr.CreatedAt.Sub(mr.FirstCommitAt)))
		}
		if fr := firstReview(mr); !fr.IsZero() {
			pickup = append(pickup, seconds(fr.Sub(mr.CreatedAt)))
			review = append(review, seconds(mr.MergedAt.Sub(fr)))
		}
		if by := ship.shippedBy(mr.ProjectID, mr.TargetBranch, mr.MergedAt); len(by) > 0 {
			deploy = append(deploy, seconds(by[0].FinishedAt.Sub(mr.MergedAt)))
		}
		start := mr.FirstCommitAt
		if start.IsZero() {
			start = mr.CreatedAt
		}
		c := seconds(mr.MergedAt.Sub(start))
		cycle = append(cycle, c)
		lines = append(lines, float64(mr.Lines))
		files = append(files, float64(mr.Files))

		a := authors[mr.Author]
		if a == nil {
			a = &group{name: mr.Author}
			authors[mr.Author] = a
		}
		a.cycles = append(a.cycles, c)
		p := projects[mr.ProjectID]
		if p == nil {
			name := mr.ProjectPath
			if name == "" {
				name = strconv.FormatInt(mr.ProjectID, 10)
			}
			p = &group{name: name, project: mr.ProjectID}
			projects[mr.ProjectID] = p
		}
		p.cycles = append(p.cycles, c)
	}
	out.Coding, out.Pickup, out.Review = Summarize(coding), Summarize(pickup), Summarize(review)
	out.Deploy, out.Cycle = Summarize(deploy), Summarize(cycle)
	out.Throughput = make([]MergedBucket, len(s.starts))
	for i, t := range s.starts {
		out.Throughput[i] = MergedBucket{Start: t, Merged: throughput[i]}
	}
	out.Size = Size{MedianLines: medianPtr(lines), MedianFiles: medianPtr(files)}
	groups := func(gs []*group) []MergedGroup {
		res := make([]MergedGroup, 0, len(gs))
		for _, g := range gs {
			res = append(res, MergedGroup{Name: g.name, ProjectID: g.project, Merged: len(g.cycles),
				CycleMedianSeconds: medianPtr(g.cycles)})
		}
		slices.SortFunc(res, func(a, b MergedGroup) int {
			return cmp.Or(cmp.Compare(b.Merged, a.Merged), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ProjectID, b.ProjectID))
		})
		return res
	}
	out.ByAuthor = groups(mapValues(authors))
	out.ByProject = groups(mapValues(projects))

	out.SlowestOpen = make([]OpenMergeRequest, 0, len(open))
	for _, mr := range open {
		mr = utcMR(mr)
		out.SlowestOpen = append(out.SlowestOpen, OpenMergeRequest{
			ID: mr.ID, ProjectID: mr.ProjectID, ProjectPath: mr.ProjectPath, IID: mr.IID, Title: mr.Title,
			Author: mr.Author, WebURL: mr.WebURL, CreatedAt: mr.CreatedAt, AgeSeconds: seconds(q.Now.Sub(mr.CreatedAt)),
		})
	}
	return out, nil
}

// firstReview is the earliest of the first approval and the first note by
// someone else (the store's FirstReviewAt), or zero if it did not come
// before the merge: a comment after the merge reviewed nothing that was
// waiting.
func firstReview(mr store.MergeFlowFact) time.Time {
	if mr.FirstReviewAt.After(mr.MergedAt) {
		return time.Time{}
	}
	return mr.FirstReviewAt
}

// shippingAfter holds the production deployments that may have shipped
// mrs, all merged in q's window: every one of the window (w), and the
// first of each production environment after it (for merge requests
// merged after that environment's last deployment in the window).
func (m *Metrics) shippingAfter(ctx context.Context, q Query, w windowDeploys, mrs []store.MergeFlowFact) (*shipping, error) {
	ship := newShipping()
	if len(mrs) == 0 {
		return ship, nil
	}
	isProd := w.isProd
	last := make(map[envKey]time.Time)
	for _, d := range w.all {
		if d.Status == "success" && !d.FinishedAt.IsZero() && isProd(d.ProjectID, d.Environment) {
			d.FinishedAt = d.FinishedAt.UTC()
			ship.add(&deploy{DeploymentFact: d})
			last[envKey{d.ProjectID, d.Environment}] = maxTime(last[envKey{d.ProjectID, d.Environment}], d.FinishedAt)
		}
	}
	// The next deployment of an environment matters only to a merge
	// request of its project merged after the environment's last one in
	// the window. Edges carry no ref: read those that matter in full.
	lastMerge := make(map[int64]time.Time)
	for _, mr := range mrs {
		lastMerge[mr.ProjectID] = maxTime(lastMerge[mr.ProjectID], mr.MergedAt.UTC())
	}
	want := make(map[envKey]time.Time)
	var projects []int64
	var until time.Time
	for _, e := range w.next {
		k := envKey{e.ProjectID, e.Environment}
		if e.FinishedAt.IsZero() || !isProd(k.project, k.env) || !lastMerge[k.project].After(last[k]) {
			continue
		}
		want[k] = e.FinishedAt.UTC()
		if !slices.Contains(projects, k.project) {
			projects = append(projects, k.project)
		}
		until = maxTime(until, past(e.FinishedAt.UTC()))
	}
	if len(want) > 0 {
		slices.Sort(projects)
		after, err := m.st.Deployments(ctx, store.FactFilter{ProjectIDs: projects, Since: q.Until, Until: until})
		if err != nil {
			return nil, fmt.Errorf("deployments: %w", err)
		}
		for _, d := range after {
			k := envKey{d.ProjectID, d.Environment}
			if t, ok := want[k]; ok && d.Status == "success" && d.FinishedAt.Equal(t) {
				d.FinishedAt = d.FinishedAt.UTC()
				ship.add(&deploy{DeploymentFact: d})
				delete(want, k) // one per environment, as the edge is
			}
		}
	}
	ship.sort()
	return ship, nil
}

func utcMR(mr store.MergeRequestFact) store.MergeRequestFact {
	mr.CreatedAt, mr.MergedAt = mr.CreatedAt.UTC(), mr.MergedAt.UTC()
	mr.FirstCommitAt, mr.FirstApprovalAt, mr.FirstNoteAt = mr.FirstCommitAt.UTC(), mr.FirstApprovalAt.UTC(), mr.FirstNoteAt.UTC()
	return mr
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
