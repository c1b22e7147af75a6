package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// PutProjects implements store.Store.
func (s *Store) PutProjects(ctx context.Context, ps ...store.Project) error {
	if len(ps) == 0 {
		return nil
	}
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		for _, p := range ps {
			status := p.Status
			if status == "" {
				status = store.ProjectActive
			}
			if _, err := tx.Exec(ctx, `INSERT INTO projects
				(id, path, name, web_url, default_branch, archived, last_activity_at, status, status_detail, status_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
				ON CONFLICT (id) DO UPDATE SET
					path = excluded.path, name = excluded.name, web_url = excluded.web_url,
					default_branch = excluded.default_branch, archived = excluded.archived,
					last_activity_at = excluded.last_activity_at, status = excluded.status,
					status_detail = excluded.status_detail, status_at = excluded.status_at`,
				p.ID, p.Path, p.Name, p.WebURL, p.DefaultBranch,
				p.Archived, ts(p.LastActivityAt), status, p.StatusDetail, ts(p.StatusAt)); err != nil {
				return fmt.Errorf("project %d: %w", p.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: put projects: %w", err)
	}
	return nil
}

// Projects implements store.Store.
func (s *Store) Projects(ctx context.Context) ([]store.Project, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, path, name, web_url, default_branch, archived, last_activity_at,
		status, status_detail, status_at FROM projects ORDER BY path, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: projects: %w", err)
	}
	defer rows.Close()
	var ps []store.Project
	for rows.Next() {
		var (
			p              store.Project
			last, statusAt pgtype.Timestamptz
		)
		if err := rows.Scan(&p.ID, &p.Path, &p.Name, &p.WebURL, &p.DefaultBranch, &p.Archived, &last,
			&p.Status, &p.StatusDetail, &statusAt); err != nil {
			return nil, fmt.Errorf("postgres: projects: %w", err)
		}
		p.LastActivityAt, p.StatusAt = fromTS(last), fromTS(statusAt)
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: projects: %w", err)
	}
	return ps, nil
}

const syncColumns = `project_id, kind, project_path, cursor_at, last_run_at, last_success_at, fetched, stored, last_error`

func scanSyncState(r scanner) (store.SyncState, error) {
	var (
		st                           store.SyncState
		kind                         string
		cursor, lastRun, lastSuccess pgtype.Timestamptz
	)
	err := r.Scan(&st.ProjectID, &kind, &st.ProjectPath, &cursor, &lastRun, &lastSuccess,
		&st.Fetched, &st.Stored, &st.LastError)
	st.Kind = change.Kind(kind)
	st.Cursor, st.LastRunAt, st.LastSuccess = fromTS(cursor), fromTS(lastRun), fromTS(lastSuccess)
	return st, err
}

// SyncState implements store.Store.
func (s *Store) SyncState(ctx context.Context, projectID int64, kind change.Kind) (store.SyncState, error) {
	st, err := scanSyncState(s.pool.QueryRow(ctx,
		`SELECT `+syncColumns+` FROM sync_state WHERE project_id = $1 AND kind = $2`, projectID, string(kind)))
	if errors.Is(err, pgx.ErrNoRows) {
		// Never synced: the zero cursor tells the poller to backfill.
		return store.SyncState{ProjectID: projectID, Kind: kind}, nil
	}
	if err != nil {
		return store.SyncState{}, fmt.Errorf("postgres: sync state %d/%s: %w", projectID, kind, err)
	}
	return st, nil
}

// PutSyncState implements store.Store.
func (s *Store) PutSyncState(ctx context.Context, st store.SyncState) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sync_state (`+syncColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (project_id, kind) DO UPDATE SET
			project_path = excluded.project_path, cursor_at = excluded.cursor_at,
			last_run_at = excluded.last_run_at, last_success_at = excluded.last_success_at,
			fetched = excluded.fetched, stored = excluded.stored, last_error = excluded.last_error`,
		st.ProjectID, string(st.Kind), st.ProjectPath, ts(st.Cursor), ts(st.LastRunAt),
		ts(st.LastSuccess), st.Fetched, st.Stored, st.LastError)
	if err != nil {
		return fmt.Errorf("postgres: put sync state %d/%s: %w", st.ProjectID, st.Kind, err)
	}
	return nil
}

// SyncStates implements store.Store.
func (s *Store) SyncStates(ctx context.Context) ([]store.SyncState, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+syncColumns+` FROM sync_state ORDER BY project_path, kind, project_id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: sync states: %w", err)
	}
	defer rows.Close()
	var out []store.SyncState
	for rows.Next() {
		st, err := scanSyncState(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: sync states: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: sync states: %w", err)
	}
	return out, nil
}
