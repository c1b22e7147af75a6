package store

import (
	"context"
	"errors"
)

// A key rotation (labtrail secrets rotate) re-seals every secret the
// store keeps sealed, the connections' and the sessions' GitLab tokens,
// in one transaction: all of them or, on any error, none.

// SessionToken is the sealed GitLab token of the session whose id
// hashes to IDHash.
type SessionToken struct {
	IDHash []byte
	Token  Sealed
}

// SealedSecrets are every sealed secret as Reseal reads them.
type SealedSecrets struct {
	Connections []Connection   // every added connection, by id
	Sessions    []SessionToken // every session holding a token, by id hash
}

// Resealed is what Reseal writes back.
type Resealed struct {
	// Connections are replaced by name, as UpdateConnections does.
	Connections []Connection
	// Sessions have their token replaced.
	Sessions []SessionToken
	// EndSessions are the id hashes of sessions to end (delete).
	EndSessions [][]byte
}

// SecretStore is the store of a key rotation.
type SecretStore interface {
	// Reseal reads every sealed secret, hands them to reseal, and writes
	// what it returns, in one write transaction that locks what it read
	// against other writers until it commits: reseal's error, or any
	// write's, leaves everything as it was. reseal may be called again
	// (when the backend retries the transaction); only its last answer
	// is written. reseal's error is returned as it is.
	Reseal(ctx context.Context, reseal func(SealedSecrets) (Resealed, error)) error
}

// errResealFn marks reseal's own error, so that Reseal returns it
// without the store's prefix.
type errResealFn struct{ err error }

func (e errResealFn) Error() string { return e.err.Error() }

// Reseal implements SecretStore.
func (s SQL[T]) Reseal(ctx context.Context, reseal func(SealedSecrets) (Resealed, error)) error {
	err := s.Tx(ctx, func(q Querier, exec Execer) error {
		var (
			in  SealedSecrets
			err error
		)
		if in.Connections, err = rowsOf(ctx, q, `SELECT `+connectionColumns+` FROM connections ORDER BY id`+s.Dialect.ForUpdate,
			nil, s.scanConnection); err != nil {
			return s.errorf("reseal: connections: %w", err)
		}
		if in.Sessions, err = rowsOf(ctx, q, `SELECT id_hash, token_key, token_sealed FROM sessions WHERE token_key <> '' ORDER BY id_hash`+
			s.Dialect.ForUpdate, nil, func(r Row) (SessionToken, error) {
			var t SessionToken
			return t, r.Scan(&t.IDHash, &t.Token.KeyID, &t.Token.Data)
		}); err != nil {
			return s.errorf("reseal: sessions: %w", err)
		}
		out, err := reseal(in)
		if err != nil {
			return errResealFn{err}
		}
		if err := s.updateConnections(ctx, exec, out.Connections); err != nil {
			return err
		}
		p := s.Dialect.Param
		if len(out.Sessions) > 0 {
			args := make([][]any, len(out.Sessions))
			for i, t := range out.Sessions {
				args[i] = []any{t.Token.KeyID, sealedData(t.Token), t.IDHash}
			}
			n, err := exec(ctx, `UPDATE sessions SET token_key = `+p(1)+`, token_sealed = `+p(2)+` WHERE id_hash = `+p(3), args...)
			if err != nil {
				return s.errorf("reseal: session tokens: %w", err)
			}
			if n != len(out.Sessions) {
				return s.errorf("reseal: session tokens: %d of %d found: %w", n, len(out.Sessions), ErrNotFound)
			}
		}
		if len(out.EndSessions) > 0 {
			args := make([][]any, len(out.EndSessions))
			for i, h := range out.EndSessions {
				args[i] = []any{h}
			}
			if _, err := exec(ctx, `DELETE FROM sessions WHERE id_hash = `+p(1), args...); err != nil {
				return s.errorf("reseal: end sessions: %w", err)
			}
		}
		return nil
	})
	var fe errResealFn
	if errors.As(err, &fe) {
		return fe.err
	}
	return err
}
