package store

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
)

// ConnectionTables are the tables of the added GitLab connections Copy
// moves and Checksums covers after Tables' (their sync states last).
var ConnectionTables = []string{"connections", "connection_projects", "connection_sync_state"}

func connectionRecord(c Connection) []byte {
	// The secrets are copied sealed, as they are: the destination needs
	// the same LABTRAIL_SECRET_KEY.
	return record(c.Name, c.URL, c.Token.KeyID, hex.EncodeToString(c.Token.Data), c.WebhookSecret.KeyID,
		hex.EncodeToString(c.WebhookSecret.Data), strings.Join(c.Repos, ","), strings.Join(c.Groups, ","), c.MaxProjects,
		c.IncludeArchived, c.RequestsPerMinute, canonTime(c.CreatedAt), canonTime(c.UpdatedAt))
}

// connRow is a row of a connection's projects or sync state tables.
type connRow[T any] struct {
	conn string
	row  T
}

// walkConnections is walk for ConnectionTables.
func walkConnections(ctx context.Context, w *walker, s connCopyStore) error {
	for _, t := range ConnectionTables {
		w.sums[t] = newSummer()
	}
	cs, err := s.Connections(ctx)
	if err != nil {
		return err
	}
	slices.SortFunc(cs, func(a, b Connection) int { return cmp.Compare(a.Name, b.Name) })
	err = whole(ctx, w, "connections", cs, connectionRecord,
		func(dst ProjectStore, ctx context.Context) ([]Connection, error) {
			return dst.(connCopyStore).Connections(ctx)
		},
		func(ctx context.Context, dst CopyStore, put []Connection) error {
			for _, c := range put {
				cd := dst.(connCopyStore)
				_, err := cd.AddConnection(ctx, c)
				if errors.Is(err, ErrConnectionExists) {
					err = cd.UpdateConnections(ctx, c)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	projects, err := readConn(ctx, s, names, ProjectStore.Projects)
	if err != nil {
		return err
	}
	err = whole(ctx, w, "connection_projects", projects,
		func(r connRow[Project]) []byte { return append([]byte(r.conn+"\x00"), projectRecord(r.row)...) },
		func(dst ProjectStore, ctx context.Context) ([]connRow[Project], error) {
			return readConn(ctx, dst.(connCopyStore), names, ProjectStore.Projects)
		},
		func(ctx context.Context, dst CopyStore, put []connRow[Project]) error {
			for _, r := range put {
				if err := dst.(connCopyStore).ConnectionProjects(r.conn).PutProjects(ctx, r.row); err != nil {
					return err
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	states, err := readConn(ctx, s, names, ProjectStore.SyncStates)
	if err != nil {
		return err
	}
	return whole(ctx, w, "connection_sync_state", states,
		func(r connRow[SyncState]) []byte { return append([]byte(r.conn+"\x00"), syncRecord(r.row)...) },
		func(dst ProjectStore, ctx context.Context) ([]connRow[SyncState], error) {
			return readConn(ctx, dst.(connCopyStore), names, ProjectStore.SyncStates)
		},
		func(ctx context.Context, dst CopyStore, put []connRow[SyncState]) error {
			for _, r := range put {
				if err := dst.(connCopyStore).ConnectionProjects(r.conn).PutSyncState(ctx, r.row); err != nil {
					return err
				}
			}
			return nil
		})
}

// readConn reads rows of every connection of names, in a canonical order
// (by connection, then by the record).
func readConn[T any](ctx context.Context, s connCopyStore, names []string, read func(ProjectStore, context.Context) ([]T, error)) ([]connRow[T], error) {
	var out []connRow[T]
	for _, n := range names {
		rows, err := read(s.ConnectionProjects(n), ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			out = append(out, connRow[T]{conn: n, row: r})
		}
	}
	return out, nil
}
