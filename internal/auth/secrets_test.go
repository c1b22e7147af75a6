package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustKey(t *testing.T) (Key, string) {
	t.Helper()
	text, err := NewKeyText()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(text)
	if err != nil {
		t.Fatal(err)
	}
	return k, text
}

func TestSealOpen(t *testing.T) {
	k, _ := mustKey(t)
	ring := NewKeyring(k)
	const secret = "glpat-the-token-itself"
	a, err := ring.Seal(secret, "connection/b/token")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ring.Seal(secret, "connection/b/token")
	if err != nil {
		t.Fatal(err)
	}
	if a.KeyID != k.ID || len(k.ID) != 16 {
		t.Fatalf("key id %q, want %q", a.KeyID, k.ID)
	}
	if bytes.Equal(a.Data, b.Data) {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	if bytes.Contains(a.Data, []byte(secret)) {
		t.Error("the sealed value holds the plaintext")
	}
	for _, s := range []Sealed{a, b} {
		got, err := ring.Open(s, "connection/b/token")
		if err != nil || got != secret {
			t.Fatalf("open: %q %v", got, err)
		}
	}
	// Another place's value does not open here.
	if _, err := ring.Open(a, "connection/c/token"); err == nil {
		t.Error("a value opened under another context")
	}
	// A flipped bit is refused.
	bad := Sealed{KeyID: a.KeyID, Data: append([]byte(nil), a.Data...)}
	bad.Data[len(bad.Data)-1] ^= 1
	if _, err := ring.Open(bad, "connection/b/token"); err == nil {
		t.Error("an altered value opened")
	}
	if _, err := ring.Open(Sealed{KeyID: a.KeyID, Data: a.Data[:5]}, "connection/b/token"); err == nil {
		t.Error("a short value opened")
	}
	// Empty is no secret, both ways.
	if z, err := ring.Seal("", "x"); err != nil || !z.IsZero() {
		t.Errorf("sealing nothing: %+v %v", z, err)
	}
	if v, err := ring.Open(Sealed{}, "x"); err != nil || v != "" {
		t.Errorf("opening nothing: %q %v", v, err)
	}
}

func TestKeyringRotation(t *testing.T) {
	old, _ := mustKey(t)
	cur, _ := mustKey(t)
	if old.ID == cur.ID {
		t.Fatal("two random keys share an id")
	}
	s, err := NewKeyring(old).Seal("webhook-secret-value", "ctx")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewKeyring(cur).Open(s, "ctx"); !errors.Is(err, ErrUnknownKey) || strings.Contains(err.Error(), "webhook-secret-value") {
		t.Fatalf("opening under a key not given: %v", err)
	}
	ring := NewKeyring(cur, old)
	v, err := ring.Open(s, "ctx")
	if err != nil || v != "webhook-secret-value" {
		t.Fatalf("opening under an older key: %q %v", v, err)
	}
	re, err := ring.Seal(v, "ctx")
	if err != nil || re.KeyID != cur.ID {
		t.Fatalf("re-sealed under %q, want %q (%v)", re.KeyID, cur.ID, err)
	}
	if _, err := NewKeyring(cur).Open(re, "ctx"); err != nil {
		t.Fatalf("the re-sealed value needs the old key: %v", err)
	}
}

func TestNoKey(t *testing.T) {
	var ring *Keyring
	if _, err := ring.Seal("x", "y"); !errors.Is(err, ErrNoKey) {
		t.Errorf("seal without a key: %v", err)
	}
	if _, err := ring.Open(Sealed{KeyID: "k", Data: []byte("abc")}, "y"); !errors.Is(err, ErrNoKey) {
		t.Errorf("open without a key: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, KeySize)
	want, err := ParseKey(base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{
		base64.RawStdEncoding.EncodeToString(raw), base64.URLEncoding.EncodeToString(raw),
		hex.EncodeToString(raw), " " + base64.StdEncoding.EncodeToString(raw) + "\n",
	} {
		k, err := ParseKey(text)
		if err != nil || k.ID != want.ID {
			t.Errorf("ParseKey(%q): %v %v", text, k.ID, err)
		}
	}
	for _, text := range []string{"", "short", base64.StdEncoding.EncodeToString(raw[:16]), strings.Repeat("z", 44)} {
		if _, err := ParseKey(text); err == nil {
			t.Errorf("ParseKey(%q) took it", text)
		} else if text != "" && strings.Contains(err.Error(), text) {
			t.Errorf("the error quotes the key: %v", err)
		}
	}
}

func TestLoadKey(t *testing.T) {
	k, text := mustKey(t)
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte(text+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		text, path string
		ok         bool
	}{
		{text, "", true}, {"", path, true}, {text, path, false}, {"", "", false},
		{"", filepath.Join(t.TempDir(), "none"), false}, {"nonsense", "", false},
	} {
		got, err := LoadKey(c.text, c.path)
		if c.ok != (err == nil) || (c.ok && got.ID != k.ID) {
			t.Errorf("LoadKey(%q, %q) = %s, %v", c.text, c.path, got.ID, err)
		}
	}
	if _, err := LoadKey("", ""); !errors.Is(err, ErrNoKey) {
		t.Errorf("no key: %v", err)
	}
}
