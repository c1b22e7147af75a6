package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"reflect"
	"testing"

	"github.com/labtrail/labtrail/internal/store"
)

// testReseal: Reseal hands over every connection and every session that
// holds a token, and writes back what it is given in one transaction:
// an error of the function, or of any write, leaves everything as it
// was.
func testReseal(t *testing.T, s store.Store) {
	h := func(v string) []byte { x := sha256.Sum256([]byte(v)); return x[:] }
	old := func(b byte) store.Sealed { return store.Sealed{KeyID: "k1", Data: []byte{b, 1, 2}} }
	if _, err := s.AddConnection(ctx(t), store.Connection{Name: "second", URL: "https://second.example", Token: old(1), WebhookSecret: old(2),
		CreatedAt: at(0), UpdatedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a", "b", "c", "token"} {
		se := store.Session{IDHash: h(name), Kind: "oauth", UserID: int64(i + 1), Name: name, Scope: "read", CSRF: "c",
			CreatedAt: at(0), ExpiresAt: at(100), OAuthToken: old(byte(10 + i))}
		if name == "token" { // an API token's session: no GitLab token
			se.Kind, se.TokenID, se.UserID, se.OAuthToken = "token", 7, 0, store.Sealed{}
		}
		if err := s.CreateSession(ctx(t), se); err != nil {
			t.Fatal(err)
		}
	}
	type state struct {
		conns    []store.Connection
		sessions map[string]store.Sealed
	}
	read := func() state {
		t.Helper()
		cs, err := s.Connections(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		st := state{conns: cs, sessions: map[string]store.Sealed{}}
		for _, name := range []string{"a", "b", "c", "token"} {
			se, err := s.SessionByHash(ctx(t), h(name))
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			st.sessions[name] = se.OAuthToken
		}
		return st
	}
	before := read()
	var seen store.SealedSecrets
	newer := func(b byte) store.Sealed { return store.Sealed{KeyID: "k2", Data: []byte{b}} }
	plan := func(in store.SealedSecrets) store.Resealed {
		c := in.Connections[0]
		c.Token, c.WebhookSecret, c.UpdatedAt = newer(1), newer(2), at(5)
		return store.Resealed{Connections: []store.Connection{c},
			Sessions:    []store.SessionToken{{IDHash: h("a"), Token: newer(10)}, {IDHash: h("b"), Token: newer(11)}},
			EndSessions: [][]byte{h("c")}}
	}

	// The function's error is returned as it is, and nothing is written.
	refused := errors.New("refused")
	if err := s.Reseal(ctx(t), func(in store.SealedSecrets) (store.Resealed, error) {
		seen = in
		return plan(in), refused
	}); err != refused {
		t.Fatalf("the function's error: %v", err)
	}
	if len(seen.Connections) != 1 || seen.Connections[0].Name != "second" || !reflect.DeepEqual(seen.Connections[0].Token, old(1)) ||
		!reflect.DeepEqual(seen.Connections[0].WebhookSecret, old(2)) {
		t.Fatalf("connections handed over: %+v", seen.Connections)
	}
	if len(seen.Sessions) != 3 {
		t.Fatalf("sessions handed over: %d, want the 3 holding a token", len(seen.Sessions))
	}
	nameOf := map[string]string{string(h("a")): "a", string(h("b")): "b", string(h("c")): "c"}
	for _, se := range seen.Sessions {
		if want, ok := before.sessions[nameOf[string(se.IDHash)]]; !ok || !reflect.DeepEqual(se.Token, want) {
			t.Errorf("session %x handed over with %+v, want %+v", se.IDHash, se.Token, want)
		}
	}
	if after := read(); !reflect.DeepEqual(after, before) {
		t.Fatalf("a refused reseal wrote:\n%+v\nwas\n%+v", after, before)
	}

	// A write that fails (an unknown session) undoes the others.
	if err := s.Reseal(ctx(t), func(in store.SealedSecrets) (store.Resealed, error) {
		out := plan(in)
		out.Sessions = append(out.Sessions, store.SessionToken{IDHash: h("gone"), Token: newer(99)})
		return out, nil
	}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("re-sealing an unknown session: %v", err)
	}
	if after := read(); !reflect.DeepEqual(after, before) {
		t.Fatalf("a failed reseal wrote:\n%+v\nwas\n%+v", after, before)
	}

	if err := s.Reseal(ctx(t), func(in store.SealedSecrets) (store.Resealed, error) { return plan(in), nil }); err != nil {
		t.Fatal(err)
	}
	after := read()
	if c := after.conns[0]; !reflect.DeepEqual(c.Token, newer(1)) || !reflect.DeepEqual(c.WebhookSecret, newer(2)) || !c.UpdatedAt.Equal(at(5)) ||
		c.URL != "https://second.example" {
		t.Errorf("the connection after reseal: %+v", c)
	}
	if !reflect.DeepEqual(after.sessions["a"], newer(10)) || !reflect.DeepEqual(after.sessions["b"], newer(11)) {
		t.Errorf("session tokens after reseal: %+v", after.sessions)
	}
	if _, ok := after.sessions["c"]; ok {
		t.Error("an ended session is still there")
	}
	if tok, ok := after.sessions["token"]; !ok || !tok.IsZero() {
		t.Errorf("an API token's session: %+v %v", tok, ok)
	}
	// Nothing to write is no error.
	if err := s.Reseal(ctx(t), func(in store.SealedSecrets) (store.Resealed, error) {
		if len(in.Sessions) != 2 || !bytes.Equal(in.Sessions[0].IDHash, minHash(h("a"), h("b"))) {
			t.Errorf("sessions handed over after reseal: %+v", in.Sessions)
		}
		return store.Resealed{}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func minHash(a, b []byte) []byte {
	if bytes.Compare(a, b) < 0 {
		return a
	}
	return b
}
