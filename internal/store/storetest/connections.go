package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// The added GitLab connections (issue 14), held for every backend.
var connectionTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"Connections", testConnections},
	{"ConnectionProjects", testConnectionProjects},
	{"EventConnections", testEventConnections},
	{"Reseal", testReseal},
}

// testEventConnections: every event carries its connection, read from its
// id, and List selects by it; a default id holding a colon (an image's
// digest) stays the default connection's.
func testEventConnections(t *testing.T, s store.Store) {
	own := func(conn string, e change.Event) change.Event { e.ID = store.ConnectionEventID(conn, e.ID); return e }
	img := mr(1, 9, 3)
	img.ID = "image-1-2-latest-sha256:0123abcd"
	events := []change.Event{mr(1, 1, 1), own("second", mr(1, 1, 2)), img, own("third_1", mr(1, 1, 4)), own("second", img)}
	mustUpsert(t, s, events...)
	for _, c := range []struct {
		conns []string
		want  []string
	}{
		{[]string{"default"}, []string{"image-1-2-latest-sha256:0123abcd", "mr-1-1"}},
		{[]string{"second"}, []string{"second:image-1-2-latest-sha256:0123abcd", "second:mr-1-1"}},
		{[]string{"third_1", "second"}, []string{"second:image-1-2-latest-sha256:0123abcd", "second:mr-1-1", "third_1:mr-1-1"}},
		{[]string{"none"}, nil},
		{nil, []string{"image-1-2-latest-sha256:0123abcd", "mr-1-1", "second:image-1-2-latest-sha256:0123abcd", "second:mr-1-1", "third_1:mr-1-1"}},
	} {
		page, err := s.List(ctx(t), store.Filter{Connections: c.conns})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range page.Events {
			got = append(got, e.ID)
			if conn := store.ConnectionOf(e.ID); len(c.conns) > 0 && !slices.Contains(c.conns, conn) {
				t.Errorf("%v: %s is of %s", c.conns, e.ID, conn)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("connections %v: %v, want %v", c.conns, got, c.want)
		}
	}
	// An update keeps its connection.
	e := own("second", mr(1, 1, 10))
	e.Title = "changed"
	mustUpsert(t, s, e)
	page, err := s.List(ctx(t), store.Filter{Connections: []string{"second"}})
	if err != nil || len(page.Events) != 2 || page.Events[0].ID != e.ID || page.Events[0].Title != "changed" {
		t.Fatalf("after an update: %+v %v", page.Events, err)
	}
}

func testConnections(t *testing.T, s store.Store) {
	b := store.Connection{Name: "second", URL: "https://gitlab.example.org",
		Token:         store.Sealed{KeyID: "k1", Data: []byte{1, 2, 3}},
		WebhookSecret: store.Sealed{KeyID: "k1", Data: []byte{4, 5}},
		Repos:         []string{"a/b", "c/d"}, Groups: []string{"g"}, MaxProjects: 50, IncludeArchived: true,
		RequestsPerMinute: 120, CreatedAt: at(0), UpdatedAt: at(0)}
	got, err := s.AddConnection(ctx(t), b)
	if err != nil {
		t.Fatal(err)
	}
	check := func(got, want store.Connection) {
		t.Helper()
		if got.ID == 0 || got.Name != want.Name || got.URL != want.URL || got.Token.KeyID != want.Token.KeyID ||
			!bytes.Equal(got.Token.Data, want.Token.Data) || got.WebhookSecret.KeyID != want.WebhookSecret.KeyID ||
			!bytes.Equal(got.WebhookSecret.Data, want.WebhookSecret.Data) || len(got.Repos) != len(want.Repos) ||
			len(got.Groups) != len(want.Groups) || got.MaxProjects != want.MaxProjects || got.IncludeArchived != want.IncludeArchived ||
			got.RequestsPerMinute != want.RequestsPerMinute || !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
			t.Fatalf("connection\n got %+v\nwant %+v", got, want)
		}
		for i := range want.Repos {
			if got.Repos[i] != want.Repos[i] {
				t.Fatalf("repos %v, want %v", got.Repos, want.Repos)
			}
		}
	}
	check(got, b)
	if _, err := s.AddConnection(ctx(t), b); !errors.Is(err, store.ErrConnectionExists) {
		t.Fatalf("a second connection named second: %v", err)
	}
	for _, name := range []string{"default", "", "Bad", "with-hyphen", "1st"} {
		if _, err := s.AddConnection(ctx(t), store.Connection{Name: name, URL: "https://x", CreatedAt: at(0), UpdatedAt: at(0)}); err == nil {
			t.Errorf("a connection named %q was added", name)
		}
	}
	// No secrets at all is kept as none.
	c := store.Connection{Name: "third", URL: "https://third.example", CreatedAt: at(1), UpdatedAt: at(1)}
	if got, err := s.AddConnection(ctx(t), c); err != nil || !got.Token.IsZero() || !got.WebhookSecret.IsZero() {
		t.Fatalf("a connection without secrets: %+v %v", got, err)
	}
	all, err := s.Connections(ctx(t))
	if err != nil || len(all) != 2 || all[0].Name != "second" || all[1].Name != "third" {
		t.Fatalf("connections: %+v %v", all, err)
	}
	// A rotation re-seals both at once.
	b2, c2 := all[0], all[1]
	b2.Token, b2.WebhookSecret, b2.UpdatedAt = store.Sealed{KeyID: "k2", Data: []byte{9}}, store.Sealed{KeyID: "k2", Data: []byte{8}}, at(5)
	c2.Token, c2.UpdatedAt = store.Sealed{KeyID: "k2", Data: []byte{7}}, at(5)
	if err := s.UpdateConnections(ctx(t), b2, c2); err != nil {
		t.Fatal(err)
	}
	got, err = s.ConnectionByName(ctx(t), "second")
	if err != nil {
		t.Fatal(err)
	}
	check(got, b2)
	if got, _ := s.ConnectionByName(ctx(t), "third"); got.Token.KeyID != "k2" || !bytes.Equal(got.Token.Data, []byte{7}) {
		t.Fatalf("third after the update: %+v", got)
	}
	if err := s.UpdateConnections(ctx(t), store.Connection{Name: "none", UpdatedAt: at(6)}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("updating an unknown connection: %v", err)
	}
	if err := s.RemoveConnection(ctx(t), "third"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConnectionByName(ctx(t), "third"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a removed connection: %v", err)
	}
	if err := s.RemoveConnection(ctx(t), "third"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("removing it again: %v", err)
	}
}

func testConnectionProjects(t *testing.T, s store.Store) {
	for _, name := range []string{"one", "two"} {
		if _, err := s.AddConnection(ctx(t), store.Connection{Name: name, URL: "https://" + name, CreatedAt: at(0), UpdatedAt: at(0)}); err != nil {
			t.Fatal(err)
		}
	}
	// Project 7 of three GitLabs: the default connection's and two added.
	p := func(path string) store.Project {
		return store.Project{ID: 7, Path: path, Name: path, WebURL: "https://x/" + path, LastActivityAt: at(1), Status: store.ProjectActive}
	}
	one, two := s.ConnectionProjects("one"), s.ConnectionProjects("two")
	for _, c := range []struct {
		ps   store.ProjectStore
		path string
	}{{s, "default/seven"}, {one, "one/seven"}, {two, "two/seven"}} {
		if err := c.ps.PutProjects(ctx(t), p(c.path)); err != nil {
			t.Fatal(err)
		}
		if err := c.ps.PutSyncState(ctx(t), store.SyncState{ProjectID: 7, ProjectPath: c.path, Kind: change.KindMergeRequest,
			Cursor: at(2), LastRunAt: at(3), LastSuccess: at(3), Fetched: 1, Stored: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		ps   store.ProjectStore
		path string
	}{{s, "default/seven"}, {one, "one/seven"}, {two, "two/seven"}} {
		ps, err := c.ps.Projects(ctx(t))
		if err != nil || len(ps) != 1 || ps[0].Path != c.path {
			t.Fatalf("projects of %s: %+v %v", c.path, ps, err)
		}
		st, err := c.ps.SyncState(ctx(t), 7, change.KindMergeRequest)
		if err != nil || st.ProjectPath != c.path || !st.Cursor.Equal(at(2)) {
			t.Fatalf("sync state of %s: %+v %v", c.path, st, err)
		}
		sts, err := c.ps.SyncStates(ctx(t))
		if err != nil || len(sts) != 1 || sts[0].ProjectPath != c.path {
			t.Fatalf("sync states of %s: %+v %v", c.path, sts, err)
		}
	}
	if st, err := one.SyncState(ctx(t), 8, change.KindPipeline); err != nil || !st.Cursor.IsZero() || st.ProjectID != 8 {
		t.Fatalf("an unsynced project: %+v %v", st, err)
	}
	// Removing a connection removes its projects and state, no other's.
	if err := s.RemoveConnection(ctx(t), "one"); err != nil {
		t.Fatal(err)
	}
	if ps, _ := one.Projects(ctx(t)); len(ps) != 0 {
		t.Errorf("projects of a removed connection: %+v", ps)
	}
	if sts, _ := one.SyncStates(ctx(t)); len(sts) != 0 {
		t.Errorf("sync states of a removed connection: %+v", sts)
	}
	for _, ps := range []store.ProjectStore{s, two} {
		if got, _ := ps.Projects(ctx(t)); len(got) != 1 {
			t.Errorf("another connection's projects went too: %+v", got)
		}
	}
}

// fillConnections adds two connections to s, one with projects and sync
// states, for the copy test.
func fillConnections(t *testing.T, s store.Store) {
	for i, name := range []string{"second", "third"} {
		c := store.Connection{Name: name, URL: "https://" + name + ".example", Token: store.Sealed{KeyID: "k", Data: []byte{byte(i), 1, 2}},
			Repos: []string{"a/b"}, MaxProjects: 10, RequestsPerMinute: 60, CreatedAt: at(i), UpdatedAt: at(i + 1)}
		if i == 0 {
			c.WebhookSecret = store.Sealed{KeyID: "k", Data: []byte{9, 9}}
		}
		if _, err := s.AddConnection(ctx(t), c); err != nil {
			t.Fatal(err)
		}
	}
	ps := s.ConnectionProjects("second")
	for _, id := range []int64{1, 2} {
		if err := ps.PutProjects(ctx(t), store.Project{ID: id, Path: fmt.Sprintf("x/p%d", id), LastActivityAt: at(3)}); err != nil {
			t.Fatal(err)
		}
		if err := ps.PutSyncState(ctx(t), store.SyncState{ProjectID: id, ProjectPath: fmt.Sprintf("x/p%d", id), Kind: change.KindPipeline,
			Cursor: at(4), LastSuccess: at(4)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ConnectionProjects("third").PutProjects(ctx(t), store.Project{ID: 1, Path: "y/p1", LastActivityAt: at(5)}); err != nil {
		t.Fatal(err)
	}
}
