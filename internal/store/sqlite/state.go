package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// PutProjects implements store.Store.
func (s *Store) PutProjects(ctx context.Context, ps ...store.Project) error {
	if len(ps) == 0 {
		return nil
	}
	for _, p := range ps {
		if err := checkTime("last_activity_at", p.LastActivityAt); err != nil {
			return fmt.Errorf("sqlite: put project %d: %w", p.ID, err)
		}
		if err := checkTime("status_at", p.StatusAt); err != nil {
			return fmt.Errorf("sqlite: put project %d: %w", p.ID, err)
		}
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO projects
			(id, path, name, web_url, default_branch, archived, last_activity_at, status, status_detail, status_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, p := range ps {
			status := p.Status
			if status == "" {
				status = store.ProjectActive
			}
			if _, err := st.ExecContext(ctx, p.ID, p.Path, p.Name, p.WebURL, p.DefaultBranch,
				p.Archived, nanos(p.LastActivityAt), status, p.StatusDetail, nanos(p.StatusAt)); err != nil {
				return fmt.Errorf("project %d: %w", p.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: put projects: %w", err)
	}
	return nil
}

// Projects implements store.Store.
func (s *Store) Projects(ctx context.Context) ([]store.Project, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, path, name, web_url, default_branch, archived, last_activity_at,
		status, status_detail, status_at FROM projects ORDER BY path, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: projects: %w", err)
	}
	defer rows.Close()
	var ps []store.Project
	for rows.Next() {
		var (
			p              store.Project
			last, statusAt int64
		)
		if err := rows.Scan(&p.ID, &p.Path, &p.Name, &p.WebURL, &p.DefaultBranch, &p.Archived, &last,
			&p.Status, &p.StatusDetail, &statusAt); err != nil {
			return nil, fmt.Errorf("sqlite: projects: %w", err)
		}
		p.LastActivityAt, p.StatusAt = fromNanos(last), fromNanos(statusAt)
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: projects: %w", err)
	}
	return ps, nil
}

const syncColumns = `project_id, kind, project_path, cursor_at, last_run_at, last_success_at, fetched, stored, last_error`

func scanSyncState(r scanner) (store.SyncState, error) {
	var (
		st                           store.SyncState
		kind                         string
		cursor, lastRun, lastSuccess int64
	)
	err := r.Scan(&st.ProjectID, &kind, &st.ProjectPath, &cursor, &lastRun, &lastSuccess,
		&st.Fetched, &st.Stored, &st.LastError)
	st.Kind = change.Kind(kind)
	st.Cursor, st.LastRunAt, st.LastSuccess = fromNanos(cursor), fromNanos(lastRun), fromNanos(lastSuccess)
	return st, err
}

// SyncState implements store.Store.
func (s *Store) SyncState(ctx context.Context, projectID int64, kind change.Kind) (store.SyncState, error) {
	st, err := scanSyncState(s.db.QueryRowContext(ctx,
		`SELECT `+syncColumns+` FROM sync_state WHERE project_id = ? AND kind = ?`, projectID, string(kind)))
	if errors.Is(err, sql.ErrNoRows) {
		// Never synced: the zero cursor tells the poller to backfill.
		return store.SyncState{ProjectID: projectID, Kind: kind}, nil
	}
	if err != nil {
		return store.SyncState{}, fmt.Errorf("sqlite: sync state %d/%s: %w", projectID, kind, err)
	}
	return st, nil
}

// PutSyncState implements store.Store.
func (s *Store) PutSyncState(ctx context.Context, st store.SyncState) error {
	for _, c := range []struct {
		name string
		t    time.Time
	}{{"cursor", st.Cursor}, {"last_run_at", st.LastRunAt}, {"last_success_at", st.LastSuccess}} {
		if err := checkTime(c.name, c.t); err != nil {
			return fmt.Errorf("sqlite: put sync state %d/%s: %w", st.ProjectID, st.Kind, err)
		}
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO sync_state (`+syncColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			st.ProjectID, string(st.Kind), st.ProjectPath, nanos(st.Cursor), nanos(st.LastRunAt),
			nanos(st.LastSuccess), st.Fetched, st.Stored, st.LastError)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put sync state %d/%s: %w", st.ProjectID, st.Kind, err)
	}
	return nil
}

// SyncStates implements store.Store.
func (s *Store) SyncStates(ctx context.Context) ([]store.SyncState, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+syncColumns+` FROM sync_state ORDER BY project_path, kind, project_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: sync states: %w", err)
	}
	defer rows.Close()
	var out []store.SyncState
	for rows.Next() {
		st, err := scanSyncState(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: sync states: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: sync states: %w", err)
	}
	return out, nil
}
