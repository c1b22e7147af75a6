package store

import (
	"context"
	"time"
)

// AdminAction is one entry of the admin audit trail (issue 14): an admin
// action (token created or revoked, connection changed, replay, webhook
// test) or a sign-in, successful or not. It never holds a secret.
type AdminAction struct {
	ID     int64     `json:"id"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`            // the principal's name; "anonymous" when none
	Action string    `json:"action"`           // e.g. token.create, token.revoke, connection.add, delivery.replay, webhook.test, signin, signin.failed
	Target string    `json:"target,omitempty"` // what it acted on: a token's name, a delivery id, a connection
	Detail string    `json:"detail,omitempty"`
	Remote string    `json:"remote,omitempty"` // the client's address
	OK     bool      `json:"ok"`
}

// AdminAuditor appends to the admin audit trail.
type AdminAuditor interface {
	AppendAdminAction(ctx context.Context, a AdminAction) error
}
