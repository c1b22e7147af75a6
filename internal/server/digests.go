package server

import (
	"context"

	"github.com/labtrail/labtrail/internal/store"
)

// digestSendLimit is how many of the newest digest sends sync status and
// the sync page show.
const digestSendLimit = 20

// digestSend is the record of a digest's send as sync status shows it.
type digestSend struct {
	store.DigestSend
	// State is sent, failed (not sent; the next run tries again) or
	// sending (claimed by a sender now).
	State string `json:"state"`
}

// digestSends are the newest digest sends, newest first.
func (s *Server) digestSends(ctx context.Context) ([]digestSend, error) {
	ds, err := s.store.DigestSends(ctx, digestSendLimit)
	if err != nil {
		return nil, err
	}
	out := make([]digestSend, 0, len(ds))
	for _, d := range ds {
		state := "sending"
		switch {
		case !d.SentAt.IsZero():
			state = "sent"
		case d.ClaimedAt.IsZero():
			state = "failed"
		}
		out = append(out, digestSend{d, state})
	}
	return out, nil
}
