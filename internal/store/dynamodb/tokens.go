package dynamodb

import (
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/labtrail/labtrail/internal/store"
)

// API tokens and the admin audit trail (store.TokenStore), so that the
// tokens `labtrail tokens create` makes on this table open the Lambda's
// API. Tokens are items of one partition by id; a token's name and its
// hash are each an item of their own naming its id, put only if absent,
// which keeps names unique and finds a token by hash in one read. None of
// them expires: they are not history.

const (
	pkTokens      = "tokens"
	pkTokenName   = "token-name#"
	pkTokenHash   = "token-hash#"
	pkAdmin       = "admin"
	counterTokens = "token"
	counterAdmin  = "admin"
)

var _ store.TokenStore = (*Store)(nil)

func tokenOf(it item) store.Token {
	return store.Token{
		ID: getN(it, "id"), Name: getS(it, "name"), Scope: getS(it, "scope"), Hash: getB(it, "hash"),
		CreatedAt: getT(it, "created_at"), LastUsedAt: getT(it, "last_used_at"), ExpiresAt: getT(it, "expires_at"),
		RevokedAt: getT(it, "revoked_at"),
	}
}

// tokenRef is the id an index item (name or hash) names; 0 for none.
func (s *Store) tokenRef(ctx context.Context, pk string) (int64, error) {
	it, err := s.getItem(ctx, key(pk, skOne))
	if err != nil || it == nil {
		return 0, err
	}
	return getN(it, "id"), nil
}

func (s *Store) token(ctx context.Context, id int64) (store.Token, error) {
	it, err := s.getItem(ctx, key(pkTokens, idKey(id)))
	switch {
	case err != nil:
		return store.Token{}, err
	case it == nil:
		return store.Token{}, store.ErrNotFound
	}
	return tokenOf(it), nil
}

// CreateToken implements store.TokenStore: the name is claimed first (put
// if absent), then the hash, then the token written; a claim that loses
// is undone.
func (s *Store) CreateToken(ctx context.Context, t store.Token) (store.Token, error) {
	for _, c := range []struct {
		name string
		t    time.Time
	}{{"created_at", t.CreatedAt}, {"expires_at", t.ExpiresAt}} {
		if err := store.CheckTime(c.name, c.t); err != nil {
			return store.Token{}, s.errorf("create token: %w", err)
		}
	}
	if len(t.Hash) == 0 {
		return store.Token{}, s.errorf("create token: no hash")
	}
	id, err := s.next(ctx, counterTokens)
	if err != nil {
		return store.Token{}, s.errorf("create token: %w", err)
	}
	ref := func(pk string) item {
		it := key(pk, skOne)
		it["id"] = avN(id)
		return it
	}
	nameKey, hashKey := pkTokenName+t.Name, pkTokenHash+hex.EncodeToString(t.Hash)
	ok, err := s.putNew(ctx, ref(nameKey))
	switch {
	case err != nil:
		return store.Token{}, s.errorf("create token: %w", err)
	case !ok:
		return store.Token{}, store.ErrTokenExists
	}
	ok, err = s.putNew(ctx, ref(hashKey))
	if err == nil && !ok {
		err = errors.New("a token with that hash exists")
	}
	if err != nil {
		if derr := s.deleteAll(ctx, []item{key(nameKey, skOne)}); derr != nil {
			err = errors.Join(err, derr)
		}
		return store.Token{}, s.errorf("create token: %w", err)
	}
	t.ID, t.LastUsedAt, t.RevokedAt = id, time.Time{}, time.Time{}
	it := key(pkTokens, idKey(id))
	it["id"] = avN(id)
	setS(it, "name", t.Name)
	setS(it, "scope", t.Scope)
	it["hash"] = avB(t.Hash)
	setT(it, "created_at", t.CreatedAt)
	setT(it, "expires_at", t.ExpiresAt)
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: it}); err != nil {
		return store.Token{}, s.errorf("create token: %w", err)
	}
	return t, nil
}

// Tokens implements store.TokenStore.
func (s *Store) Tokens(ctx context.Context) ([]store.Token, error) {
	its, err := s.partition(ctx, pkTokens)
	if err != nil {
		return nil, s.errorf("tokens: %w", err)
	}
	out := make([]store.Token, len(its))
	for i, it := range its {
		out[i] = tokenOf(it)
	}
	return out, nil
}

// TokenByHash implements store.TokenStore.
func (s *Store) TokenByHash(ctx context.Context, h []byte) (store.Token, error) {
	id, err := s.tokenRef(ctx, pkTokenHash+hex.EncodeToString(h))
	switch {
	case err != nil:
		return store.Token{}, s.errorf("token: %w", err)
	case id == 0:
		return store.Token{}, store.ErrNotFound
	}
	t, err := s.token(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Token{}, s.errorf("token: %w", err)
	}
	return t, err
}

// RevokeToken implements store.TokenStore. A name is looked for first,
// then, when ref is a number, the token of that id. A revoked token keeps
// its first revocation's time.
func (s *Store) RevokeToken(ctx context.Context, ref string, at time.Time) (store.Token, error) {
	if err := store.CheckTime("at", at); err != nil {
		return store.Token{}, s.errorf("revoke token: %w", err)
	}
	id, err := s.tokenRef(ctx, pkTokenName+ref)
	if n, perr := strconv.ParseInt(ref, 10, 64); err == nil && id == 0 && perr == nil && n > 0 {
		id = n
	}
	if err != nil {
		return store.Token{}, s.errorf("revoke token: %w", err)
	}
	if id == 0 {
		return store.Token{}, store.ErrNotFound
	}
	it, err := s.setTokenTime(ctx, id, "revoked_at", at, true)
	if isConditionFailed(err) {
		return store.Token{}, store.ErrNotFound
	}
	if err != nil {
		return store.Token{}, s.errorf("revoke token: %w", err)
	}
	return tokenOf(it), nil
}

// TouchToken implements store.TokenStore.
func (s *Store) TouchToken(ctx context.Context, id int64, at time.Time) error {
	if err := store.CheckTime("at", at); err != nil {
		return s.errorf("touch token: %w", err)
	}
	if _, err := s.setTokenTime(ctx, id, "last_used_at", at, false); err != nil && !isConditionFailed(err) {
		return s.errorf("touch token: %w", err)
	}
	return nil
}

// setTokenTime sets the time attr of token id to at (only if it has none,
// with first) and returns the token as it is then; a token that does not
// exist is a condition error.
func (s *Store) setTokenTime(ctx context.Context, id int64, attr string, at time.Time, first bool) (item, error) {
	set := "SET #t = :at"
	if first {
		set = "SET #t = if_not_exists(#t, :at)"
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       key(pkTokens, idKey(id)),
		UpdateExpression:          aws.String(set),
		ConditionExpression:       aws.String("attribute_exists(#pk)"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK, "#t": attr},
		ExpressionAttributeValues: item{":at": avN(at.UnixNano())},
		ReturnValues:              types.ReturnValueAllNew,
	})
	if err != nil {
		return nil, err
	}
	return out.Attributes, nil
}

// AppendAdminAction implements store.AdminAuditor.
func (s *Store) AppendAdminAction(ctx context.Context, a store.AdminAction) error {
	if err := store.CheckTime("time", a.Time); err != nil {
		return s.errorf("admin audit: %w", err)
	}
	id, err := s.next(ctx, counterAdmin)
	if err != nil {
		return s.errorf("admin audit: %w", err)
	}
	it := key(pkAdmin, idKey(id))
	it["id"] = avN(id)
	setT(it, "at", a.Time)
	for _, f := range []struct{ name, v string }{
		{"actor", a.Actor}, {"action", a.Action}, {"target", a.Target}, {"detail", a.Detail}, {"remote", a.Remote},
	} {
		setS(it, f.name, f.v)
	}
	it["succeeded"] = avBool(a.OK)
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: it}); err != nil {
		return s.errorf("admin audit: %w", err)
	}
	return nil
}

// AdminActions implements store.TokenStore.
func (s *Store) AdminActions(ctx context.Context, before int64, limit int) ([]store.AdminAction, error) {
	if limit <= 0 || limit > store.MaxLimit {
		limit = store.DefaultLimit
	}
	in := &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: item{":pk": avS(pkAdmin)},
		ScanIndexForward:          aws.Bool(false),
		ConsistentRead:            aws.Bool(true),
		Limit:                     aws.Int32(int32(limit)),
	}
	if before > 0 {
		in.KeyConditionExpression = aws.String("#pk = :pk AND #sk < :before")
		in.ExpressionAttributeNames["#sk"] = attrSK
		in.ExpressionAttributeValues[":before"] = avS(idKey(before))
	}
	var out []store.AdminAction
	err := s.query(ctx, in, func(it item) bool {
		out = append(out, store.AdminAction{
			ID: getN(it, "id"), Time: getT(it, "at"), Actor: getS(it, "actor"), Action: getS(it, "action"),
			Target: getS(it, "target"), Detail: getS(it, "detail"), Remote: getS(it, "remote"), OK: getBool(it, "succeeded"),
		})
		return len(out) < limit
	})
	if err != nil {
		return nil, s.errorf("admin audit: %w", err)
	}
	return out, nil
}
