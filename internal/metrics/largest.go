package metrics

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// MergedMergeRequest is one merge request merged in a window, with its
// size.
type MergedMergeRequest struct {
	ID          string    `json:"id"`
	ProjectID   int64     `json:"project_id"`
	ProjectPath string    `json:"project_path"`
	IID         int64     `json:"iid"`
	Author      string    `json:"author"`
	MergedAt    time.Time `json:"merged_at"`
	// Lines is lines added plus deleted, as Size counts them.
	Lines int `json:"lines"`
	Files int `json:"files"`
}

// LargestMerged returns the limit largest merge requests merged in q's
// window (those MergeRequests counts in Merged), by lines changed, then
// files, then newest merge first.
func (m *Metrics) LargestMerged(ctx context.Context, q Query, limit int) ([]MergedMergeRequest, error) {
	q, err := q.normalize()
	if err != nil {
		return nil, err
	}
	mrs, err := inHalves(ctx, q.filter(), m.st.MergedMergeRequests)
	if err != nil {
		return nil, fmt.Errorf("merged merge requests: %w", err)
	}
	out := make([]MergedMergeRequest, 0, len(mrs))
	for _, mr := range mrs {
		if mr.MergedAt.IsZero() {
			continue
		}
		out = append(out, MergedMergeRequest{ID: mr.ID, ProjectID: mr.ProjectID, ProjectPath: mr.ProjectPath, IID: mr.IID,
			Author: mr.Author, MergedAt: mr.MergedAt.UTC(), Lines: mr.Additions + mr.Deletions, Files: mr.Files})
	}
	slices.SortFunc(out, func(a, b MergedMergeRequest) int {
		return cmp.Or(cmp.Compare(b.Lines, a.Lines), cmp.Compare(b.Files, a.Files), b.MergedAt.Compare(a.MergedAt), cmp.Compare(a.ID, b.ID))
	})
	return out[:min(limit, len(out))], nil
}
