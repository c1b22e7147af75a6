package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/labtrail/labtrail/internal/store"
)

// Secrets kept at rest (a connection's GitLab token and webhook secret,
// a dashboard session's GitLab token) are sealed with AES-256-GCM under
// a key only the process holds (LABTRAIL_SECRET_KEY or
// LABTRAIL_SECRET_KEY_FILE), each with a random nonce and the id of the
// key that sealed it, so that a rotation can tell which values still
// need re-sealing and a wrong key is named, not guessed at.

// KeySize is the length of a secret key: 256 bits.
const KeySize = 32

// ErrNoKey is the error of sealing or opening without a key.
var ErrNoKey = errors.New("no secret key: set LABTRAIL_SECRET_KEY or LABTRAIL_SECRET_KEY_FILE (make one with `labtrail secrets keygen`)")

// ErrUnknownKey is the error of opening a value sealed under a key the
// keyring does not hold.
var ErrUnknownKey = errors.New("the value was sealed under another secret key")

// Key is one secret key.
type Key struct {
	ID   string // the first 8 bytes of SHA-256 over the key, in hex
	aead cipher.AEAD
}

// NewKeyText returns a new random key as LABTRAIL_SECRET_KEY takes it
// (base64 of 32 bytes).
func NewKeyText() (string, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// ParseKey reads a key: 32 bytes in standard or URL-safe base64 (with or
// without padding) or in hex. Its error never quotes the text.
func ParseKey(text string) (Key, error) {
	text = strings.TrimSpace(text)
	var raw []byte
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if b, err := dec(text); err == nil && len(b) == KeySize {
			raw = b
			break
		}
	}
	if raw == nil {
		return Key{}, fmt.Errorf("a secret key is %d bytes in base64 or hex (make one with `labtrail secrets keygen`); this one is not", KeySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return Key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return Key{}, err
	}
	// The id is a hash of the key under a label of its own, so it says
	// which key sealed a value and nothing about the key.
	sum := sha256.Sum256(append([]byte("labtrail secret key id\x00"), raw...))
	return Key{ID: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// LoadKey reads a key from text (LABTRAIL_SECRET_KEY) or, when text is
// empty, from the file at path (LABTRAIL_SECRET_KEY_FILE). Both empty is
// ErrNoKey; both set is an error, as one of them would be ignored.
func LoadKey(text, path string) (Key, error) {
	switch {
	case text != "" && path != "":
		return Key{}, errors.New("set LABTRAIL_SECRET_KEY or LABTRAIL_SECRET_KEY_FILE, not both")
	case text == "" && path == "":
		return Key{}, ErrNoKey
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return Key{}, fmt.Errorf("LABTRAIL_SECRET_KEY_FILE: %w", err)
		}
		k, err := ParseKey(string(b))
		if err != nil {
			return Key{}, fmt.Errorf("LABTRAIL_SECRET_KEY_FILE %s: %w", path, err)
		}
		return k, nil
	}
	k, err := ParseKey(text)
	if err != nil {
		return Key{}, fmt.Errorf("LABTRAIL_SECRET_KEY: %w", err)
	}
	return k, nil
}

// Sealed is a secret as it is kept (store.Sealed): the id of the key
// that sealed it and the nonce followed by the ciphertext.
type Sealed = store.Sealed

// Keyring seals secrets under its current key and opens values sealed
// under any of its keys (the current one and, during a rotation, older
// ones).
type Keyring struct {
	current Key
	keys    map[string]Key
}

// NewKeyring returns a keyring sealing under current and opening values
// sealed under current or any of older.
func NewKeyring(current Key, older ...Key) *Keyring {
	k := &Keyring{current: current, keys: map[string]Key{current.ID: current}}
	for _, o := range older {
		k.keys[o.ID] = o
	}
	return k
}

// CurrentID is the id of the key Seal uses.
func (k *Keyring) CurrentID() string {
	if k == nil {
		return ""
	}
	return k.current.ID
}

// Seal encrypts plaintext under the current key with a random nonce.
// context binds the value to where it is kept (a connection's name and
// field): a sealed value copied elsewhere does not open.
func (k *Keyring) Seal(plaintext, context string) (Sealed, error) {
	if k == nil || k.current.aead == nil {
		return Sealed{}, ErrNoKey
	}
	if plaintext == "" {
		return Sealed{}, nil
	}
	a := k.current.aead
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plaintext)+a.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, err
	}
	return Sealed{KeyID: k.current.ID, Data: a.Seal(nonce, nonce, []byte(plaintext), []byte(context))}, nil
}

// Open decrypts s, sealed with context. Its errors never hold the value.
func (k *Keyring) Open(s Sealed, context string) (string, error) {
	if s.IsZero() {
		return "", nil
	}
	if k == nil || k.current.aead == nil {
		return "", ErrNoKey
	}
	key, ok := k.keys[s.KeyID]
	if !ok {
		return "", fmt.Errorf("%w (key id %s; the keys given are %s)", ErrUnknownKey, s.KeyID, k.ids())
	}
	a := key.aead
	if len(s.Data) < a.NonceSize()+a.Overhead() {
		return "", errors.New("a sealed secret is cut short")
	}
	plain, err := a.Open(nil, s.Data[:a.NonceSize()], s.Data[a.NonceSize():], []byte(context))
	if err != nil {
		return "", fmt.Errorf("a sealed secret does not open under key %s: altered, or moved from elsewhere", s.KeyID)
	}
	return string(plain), nil
}

func (k *Keyring) ids() string {
	ids := []string{k.current.ID}
	for id := range k.keys {
		if id != k.current.ID {
			ids = append(ids, id)
		}
	}
	return strings.Join(ids, ", ")
}
