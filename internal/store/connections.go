package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// Sealed is a secret as the store keeps it: sealed (auth.Keyring) under
// the key of id KeyID, Data the nonce followed by the ciphertext. The
// zero Sealed is no secret.
type Sealed struct {
	KeyID string
	Data  []byte
}

// IsZero reports whether s holds no secret.
func (s Sealed) IsZero() bool { return s.KeyID == "" && len(s.Data) == 0 }

// Connection is a GitLab connection added beside the default one (the
// environment's GITLAB_URL and GITLAB_TOKEN): its own URL, token,
// webhook secret, project selection and rate limit. The ids of its
// events are prefixed by its name (ConnectionEventID). Its secrets are
// sealed and never leave the server: they have no JSON form.
type Connection struct {
	ID                int64     `json:"id"`
	Name              string    `json:"name"`
	URL               string    `json:"url"`
	Token             Sealed    `json:"-"`
	WebhookSecret     Sealed    `json:"-"`
	Repos             []string  `json:"repos,omitempty"`
	Groups            []string  `json:"groups,omitempty"`
	MaxProjects       int       `json:"max_projects"`
	IncludeArchived   bool      `json:"include_archived"`
	RequestsPerMinute int       `json:"requests_per_minute"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// DefaultConnection names the connection the environment describes.
const DefaultConnection = "default"

// ErrConnectionExists is AddConnection's error for a name already taken.
var ErrConnectionExists = errors.New("a connection of that name exists")

// ValidConnectionName reports whether name may name a connection: 1 to
// 32 lowercase letters, digits and underscores, starting with a letter,
// and not "default". Ids of the default connection's events all start
// with a kind and a hyphen, so "name:" before an id cannot be mistaken
// for part of one.
func ValidConnectionName(name string) error {
	if name == DefaultConnection {
		return errors.New(`"default" is the connection of GITLAB_URL and GITLAB_TOKEN; choose another name`)
	}
	if len(name) == 0 || len(name) > 32 || name[0] < 'a' || name[0] > 'z' {
		return errors.New("a connection's name is 1 to 32 lowercase letters, digits and underscores, starting with a letter")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return errors.New("a connection's name is 1 to 32 lowercase letters, digits and underscores, starting with a letter")
		}
	}
	return nil
}

// ConnectionEventID is the id an event of connection name is stored
// under: the default connection's ids unchanged, another's prefixed by
// its name and a colon.
func ConnectionEventID(name, id string) string {
	if name == "" || name == DefaultConnection {
		return id
	}
	return name + ":" + id
}

// ConnectionOf returns the connection an event id belongs to.
func ConnectionOf(id string) string {
	name, _, ok := strings.Cut(id, ":")
	if !ok || ValidConnectionName(name) != nil {
		return DefaultConnection
	}
	return name
}

// ConnectionStore keeps the added connections and, for each, its
// projects and sync state apart from the default connection's.
type ConnectionStore interface {
	// AddConnection stores c and returns it with its id
	// (ErrConnectionExists when its name is taken).
	AddConnection(ctx context.Context, c Connection) (Connection, error)
	// Connections lists the added connections by id.
	Connections(ctx context.Context) ([]Connection, error)
	// ConnectionByName returns one (ErrNotFound when none).
	ConnectionByName(ctx context.Context, name string) (Connection, error)
	// UpdateConnections replaces the connections of cs by name, all in
	// one transaction.
	UpdateConnections(ctx context.Context, cs ...Connection) error
	// RemoveConnection removes the connection named and its projects and
	// sync state (ErrNotFound when none); its events stay.
	RemoveConnection(ctx context.Context, name string) error
	// ConnectionProjects is the ProjectStore of connection name.
	ConnectionProjects(name string) ProjectStore
}

const connectionColumns = `id, name, url, token_key, token_sealed, secret_key, secret_sealed, repos, groups_,
	max_projects, include_archived, requests_per_minute, created_at, updated_at`

func (s SQL[T]) scanConnection(r Row) (Connection, error) {
	var (
		c              Connection
		repos, groups  string
		created, updat T
	)
	err := r.Scan(&c.ID, &c.Name, &c.URL, &c.Token.KeyID, &c.Token.Data, &c.WebhookSecret.KeyID, &c.WebhookSecret.Data,
		&repos, &groups, &c.MaxProjects, &c.IncludeArchived, &c.RequestsPerMinute, &created, &updat)
	c.Repos, c.Groups = splitNames(repos), splitNames(groups)
	c.CreatedAt, c.UpdatedAt = s.Scan.From(created), s.Scan.From(updat)
	return c, err
}

func splitNames(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func (s SQL[T]) connectionArgs(c Connection) []any {
	return []any{c.URL, c.Token.KeyID, sealedData(c.Token), c.WebhookSecret.KeyID, sealedData(c.WebhookSecret),
		strings.Join(c.Repos, ","), strings.Join(c.Groups, ","), c.MaxProjects, c.IncludeArchived, c.RequestsPerMinute,
		s.Dialect.Time(c.UpdatedAt), c.Name}
}

// AddConnection implements ConnectionStore.
func (s SQL[T]) AddConnection(ctx context.Context, c Connection) (Connection, error) {
	if err := ValidConnectionName(c.Name); err != nil {
		return Connection{}, err
	}
	if err := s.check([]string{"created_at", "updated_at"}, c.CreatedAt, c.UpdatedAt); err != nil {
		return Connection{}, s.errorf("add connection: %w", err)
	}
	if _, err := s.ConnectionByName(ctx, c.Name); err == nil {
		return Connection{}, ErrConnectionExists
	}
	args := append(s.connectionArgs(c), s.Dialect.Time(c.CreatedAt))
	if _, err := s.Exec(ctx, `INSERT INTO connections (url, token_key, token_sealed, secret_key, secret_sealed, repos, groups_,
		max_projects, include_archived, requests_per_minute, updated_at, name, created_at) VALUES (`+s.Dialect.Params(13)+`)`, args); err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "unique") {
			return Connection{}, ErrConnectionExists
		}
		return Connection{}, s.errorf("add connection: %w", err)
	}
	return s.ConnectionByName(ctx, c.Name)
}

func (s SQL[T]) connectionsWhere(ctx context.Context, cond string, args ...any) ([]Connection, error) {
	q := s.Dialect.Query()
	if cond != "" {
		q.Where(cond, args...)
	}
	return rowsOf(ctx, s.Query, `SELECT `+connectionColumns+` FROM connections`+q.WhereSQL()+` ORDER BY id`, q.Args(), s.scanConnection)
}

// Connections implements ConnectionStore.
func (s SQL[T]) Connections(ctx context.Context) ([]Connection, error) {
	cs, err := s.connectionsWhere(ctx, "")
	if err != nil {
		return nil, s.errorf("connections: %w", err)
	}
	return cs, nil
}

// ConnectionByName implements ConnectionStore.
func (s SQL[T]) ConnectionByName(ctx context.Context, name string) (Connection, error) {
	cs, err := s.connectionsWhere(ctx, "name = ?", name)
	switch {
	case err != nil:
		return Connection{}, s.errorf("connection %q: %w", name, err)
	case len(cs) == 0:
		return Connection{}, ErrNotFound
	}
	return cs[0], nil
}

// UpdateConnections implements ConnectionStore.
func (s SQL[T]) UpdateConnections(ctx context.Context, cs ...Connection) error {
	return s.updateConnections(ctx, s.Exec, cs)
}

// updateConnections replaces cs by name with exec (in a transaction of
// its own, or of the caller's).
func (s SQL[T]) updateConnections(ctx context.Context, exec Execer, cs []Connection) error {
	if len(cs) == 0 {
		return nil
	}
	args := make([][]any, len(cs))
	for i, c := range cs {
		if err := s.check([]string{"updated_at"}, c.UpdatedAt); err != nil {
			return s.errorf("update connection %q: %w", c.Name, err)
		}
		args[i] = s.connectionArgs(c)
	}
	p := s.Dialect.Param
	sets := []string{"url", "token_key", "token_sealed", "secret_key", "secret_sealed", "repos", "groups_",
		"max_projects", "include_archived", "requests_per_minute", "updated_at"}
	for i, c := range sets {
		sets[i] = c + " = " + p(i+1)
	}
	n, err := exec(ctx, `UPDATE connections SET `+strings.Join(sets, ", ")+` WHERE name = `+p(len(sets)+1), args...)
	if err != nil {
		return s.errorf("update connections: %w", err)
	}
	if n != len(cs) {
		return s.errorf("update connections: %d of %d found: %w", n, len(cs), ErrNotFound)
	}
	return nil
}

// RemoveConnection implements ConnectionStore.
func (s SQL[T]) RemoveConnection(ctx context.Context, name string) error {
	p := s.Dialect.Param(1)
	n, err := s.Exec(ctx, `DELETE FROM connections WHERE name = `+p, []any{name})
	if err != nil {
		return s.errorf("remove connection %q: %w", name, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	for _, table := range []string{"connection_projects", "connection_sync_state"} {
		if _, err := s.Exec(ctx, `DELETE FROM `+table+` WHERE connection = `+p, []any{name}); err != nil {
			return s.errorf("remove connection %q: %w", name, err)
		}
	}
	return nil
}

// ConnectionProjects implements ConnectionStore.
func (s SQL[T]) ConnectionProjects(name string) ProjectStore {
	return connectionProjects[T]{s: s, name: name}
}

// connectionProjects is the ProjectStore of one added connection: the
// default connection's statements on tables keyed by connection too.
type connectionProjects[T any] struct {
	s    SQL[T]
	name string
}

func (c connectionProjects[T]) PutProjects(ctx context.Context, ps ...Project) error {
	if len(ps) == 0 {
		return nil
	}
	args := make([][]any, len(ps))
	for i, p := range ps {
		if err := c.s.check([]string{"last_activity_at", "status_at"}, p.LastActivityAt, p.StatusAt); err != nil {
			return c.s.errorf("put project %d: %w", p.ID, err)
		}
		args[i] = append([]any{c.name}, c.s.Dialect.ProjectArgs(p)...)
	}
	stmt := upsertInto("connection_projects", "connection, "+ProjectColumns, "connection, id", strings.Split(c.s.Dialect.Params(11), ", "))
	if _, err := c.s.Exec(ctx, stmt, args...); err != nil {
		return c.s.errorf("put projects of %s: %w", c.name, err)
	}
	return nil
}

func (c connectionProjects[T]) Projects(ctx context.Context) ([]Project, error) {
	ps, err := rowsOf(ctx, c.s.Query, `SELECT `+ProjectColumns+` FROM connection_projects WHERE connection = `+c.s.Dialect.Param(1)+
		` ORDER BY path, id`, []any{c.name}, c.s.Scan.Project)
	if err != nil {
		return nil, c.s.errorf("projects of %s: %w", c.name, err)
	}
	return ps, nil
}

func (c connectionProjects[T]) SyncState(ctx context.Context, projectID int64, kind change.Kind) (SyncState, error) {
	q := c.s.Dialect.Query()
	q.Where("connection = ? AND project_id = ? AND kind = ?", c.name, projectID, string(kind))
	st, err := rowsOf(ctx, c.s.Query, `SELECT `+SyncColumns+` FROM connection_sync_state`+q.WhereSQL(), q.Args(), c.s.Scan.SyncState)
	switch {
	case err != nil:
		return SyncState{}, c.s.errorf("sync state %s/%d/%s: %w", c.name, projectID, kind, err)
	case len(st) == 0:
		return SyncState{ProjectID: projectID, Kind: kind}, nil
	}
	return st[0], nil
}

func (c connectionProjects[T]) PutSyncState(ctx context.Context, st SyncState) error {
	err := c.s.check([]string{"cursor", "last_run_at", "last_success_at"}, st.Cursor, st.LastRunAt, st.LastSuccess)
	if err == nil {
		stmt := upsertInto("connection_sync_state", "connection, "+SyncColumns, "connection, project_id, kind", strings.Split(c.s.Dialect.Params(10), ", "))
		_, err = c.s.Exec(ctx, stmt, append([]any{c.name}, c.s.Dialect.SyncArgs(st)...))
	}
	if err != nil {
		return c.s.errorf("put sync state %s/%d/%s: %w", c.name, st.ProjectID, st.Kind, err)
	}
	return nil
}

func (c connectionProjects[T]) SyncStates(ctx context.Context) ([]SyncState, error) {
	out, err := rowsOf(ctx, c.s.Query, `SELECT `+SyncColumns+` FROM connection_sync_state WHERE connection = `+c.s.Dialect.Param(1)+
		` ORDER BY project_path, kind, project_id`, []any{c.name}, c.s.Scan.SyncState)
	if err != nil {
		return nil, c.s.errorf("sync states of %s: %w", c.name, err)
	}
	return out, nil
}
