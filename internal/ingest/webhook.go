package ingest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// MaxWebhookBody is GitLab's own limit on a webhook payload (25 MB).
const MaxWebhookBody = 25 << 20

// WebhookConfig says which deliveries the webhook endpoint accepts.
type WebhookConfig struct {
	// Secrets are the accepted X-Gitlab-Token values (one per group or
	// project hook, say). At least one is required.
	Secrets []string
	// SigningSecrets ("whsec_<base64 key>") turn on verification of
	// GitLab's signed webhooks (Standard Webhooks headers).
	SigningSecrets []string
	// Allow, if not empty, is the set of networks deliveries may come from.
	Allow []netip.Prefix
	// MaxBody caps a payload; default MaxWebhookBody.
	MaxBody int64
	// Tolerance is how far a signed delivery's timestamp may be from now;
	// default 5 minutes. It stops a captured delivery being replayed later.
	Tolerance time.Duration
}

// Enqueuer hands a stored delivery to the worker that converts it; the job
// queue implements it.
type Enqueuer interface {
	EnqueueDelivery(ctx context.Context, id int64) error
}

// WebhookHandler receives GitLab webhooks: it verifies, stores the delivery
// durably, enqueues its conversion and only then answers 2xx. Anything it
// refuses stores nothing.
type WebhookHandler struct {
	cfg     WebhookConfig
	keys    [][]byte
	store   store.DeliveryStore
	enqueue Enqueuer
	log     *slog.Logger
	now     func() time.Time
}

// ErrNoWebhookSecret is NewWebhookHandler's answer to a config without
// secrets: the Secret token configured on GitLab's webhook is required.
var ErrNoWebhookSecret = errors.New("webhooks need a secret: the Secret token configured on the GitLab webhook")

// NewWebhookHandler checks cfg and builds the handler.
func NewWebhookHandler(cfg WebhookConfig, st store.DeliveryStore, enq Enqueuer, log *slog.Logger) (*WebhookHandler, error) {
	if len(cfg.Secrets) == 0 {
		return nil, ErrNoWebhookSecret
	}
	h := &WebhookHandler{cfg: cfg, store: st, enqueue: enq, log: log, now: time.Now}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.cfg.MaxBody <= 0 {
		h.cfg.MaxBody = MaxWebhookBody
	}
	if h.cfg.Tolerance <= 0 {
		h.cfg.Tolerance = 5 * time.Minute
	}
	for i, s := range cfg.SigningSecrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil || !strings.HasPrefix(s, "whsec_") || len(key) == 0 {
			return nil, fmt.Errorf("signing secret %d of %d is not a whsec_<base64> signing secret", i+1, len(cfg.SigningSecrets))
		}
		h.keys = append(h.keys, key)
	}
	return h, nil
}

func writeWebhookError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// ServeHTTP handles POST /api/v1/webhooks/gitlab.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeWebhookError(w, http.StatusMethodNotAllowed, "webhooks are POSTed")
		return
	}
	if !h.allowed(r.RemoteAddr) {
		writeWebhookError(w, http.StatusForbidden, "this address may not send webhooks")
		return
	}
	if r.ContentLength > h.cfg.MaxBody {
		writeWebhookError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload over %d bytes", h.cfg.MaxBody))
		return
	}
	if !h.tokenOK(r.Header.Get("X-Gitlab-Token")) {
		writeWebhookError(w, http.StatusUnauthorized, "missing or wrong X-Gitlab-Token")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeWebhookError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload over %d bytes", h.cfg.MaxBody))
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The server's read deadline cut off a body sent too slowly.
			writeWebhookError(w, http.StatusRequestTimeout, "the payload took too long to arrive")
			return
		}
		writeWebhookError(w, http.StatusBadRequest, "could not read the payload")
		return
	}
	if len(h.keys) > 0 {
		if err := h.verifySignature(r.Header, body); err != nil {
			writeWebhookError(w, http.StatusUnauthorized, err.Error())
			return
		}
	}
	event := strings.TrimSpace(r.Header.Get("X-Gitlab-Event"))
	if event == "" {
		writeWebhookError(w, http.StatusBadRequest, "no X-Gitlab-Event header")
		return
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' || !json.Valid(body) {
		writeWebhookError(w, http.StatusBadRequest, "the payload is not a JSON object")
		return
	}
	d := store.Delivery{
		IdempotencyKey: idempotencyKey(r.Header, event, body),
		EventType:      event,
		EventUUID:      r.Header.Get("X-Gitlab-Event-UUID"),
		WebhookUUID:    r.Header.Get("X-Gitlab-Webhook-UUID"),
		Headers:        keptHeaders(r.Header),
		Body:           body,
		ReceivedAt:     h.now().UTC(),
		Status:         store.DeliveryPending,
	}
	id, dup, err := h.store.PutDelivery(r.Context(), d)
	if err != nil {
		h.log.Error("webhook: could not store delivery", "event", event, "err", err)
		writeWebhookError(w, http.StatusServiceUnavailable, "could not store the delivery; GitLab will retry it")
		return
	}
	if !dup && h.enqueue != nil {
		// Stored is what counts: a delivery whose job could not be queued
		// stays pending and the pending sweep queues it.
		if err := h.enqueue.EnqueueDelivery(r.Context(), id); err != nil {
			h.log.Warn("webhook: stored but not queued; the pending sweep will pick it up", "delivery", id, "err", err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "accepted", "delivery_id": id, "duplicate": dup})
}

// idempotencyKey is GitLab's Idempotency-Key, shared by the retries and
// manual resends of one delivery. Older GitLab versions send none; their
// retries carry the same payload, so a digest of it stands in.
// X-Gitlab-Event-UUID must not be used: one user action's hooks share it.
func idempotencyKey(h http.Header, event string, body []byte) string {
	if k := strings.TrimSpace(h.Get("Idempotency-Key")); k != "" {
		return k
	}
	sum := sha256.Sum256(append([]byte(event+"\x00"), body...))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// keptHeaders are the headers worth keeping with a delivery; the token and
// signature are secrets or derived from them and are never stored.
func keptHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		ck := http.CanonicalHeaderKey(k)
		switch {
		case ck == "X-Gitlab-Token", ck == "Webhook-Signature":
			continue
		case strings.HasPrefix(ck, "X-Gitlab-"), ck == "Idempotency-Key", ck == "User-Agent",
			ck == "Webhook-Id", ck == "Webhook-Timestamp", ck == "Content-Type":
			out[ck] = strings.Join(v, ", ")
		}
	}
	return out
}

func (h *WebhookHandler) tokenOK(got string) bool {
	ok := 0
	for _, s := range h.cfg.Secrets {
		// Compare with every secret, so the time taken says nothing
		// about which one (if any) matched.
		ok |= subtle.ConstantTimeCompare([]byte(got), []byte(s))
	}
	return ok == 1
}

func (h *WebhookHandler) allowed(remote string) bool {
	if len(h.cfg.Allow) == 0 {
		return true
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range h.cfg.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// verifySignature checks the Standard Webhooks signature GitLab adds to
// signed webhooks: webhook-signature holds space-separated "v1,<base64
// HMAC-SHA256 of id.timestamp.body>" entries, any of which may match.
func (h *WebhookHandler) verifySignature(hd http.Header, body []byte) error {
	id, ts, sigs := hd.Get("Webhook-Id"), hd.Get("Webhook-Timestamp"), hd.Get("Webhook-Signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature (signed webhooks are required)")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("webhook-timestamp is not a Unix time")
	}
	if d := h.now().Sub(time.Unix(sec, 0)); d > h.cfg.Tolerance || d < -h.cfg.Tolerance {
		return errors.New("webhook-timestamp too far from now: refusing a possible replay")
	}
	signed := make([]byte, 0, len(id)+len(ts)+len(body)+2)
	signed = append(append(append(append(append(signed, id...), '.'), ts...), '.'), body...)
	for _, key := range h.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write(signed)
		want := mac.Sum(nil)
		for _, entry := range strings.Fields(sigs) {
			version, b64, ok := strings.Cut(entry, ",")
			if !ok || version != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(b64)
			if err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return errors.New("webhook-signature does not match the signing secret")
}
