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

	"golang.org/x/sync/semaphore"

	"github.com/labtrail/labtrail/internal/store"
)

// MaxWebhookBody is GitLab's own limit on a webhook payload (25 MB).
const MaxWebhookBody = 25 << 20

// DefaultWebhookMemory is how many bytes of payloads the webhook endpoint
// holds in memory at once unless told otherwise (WebhookConfig.Memory).
const DefaultWebhookMemory = 64 << 20

// DefaultWebhookMemoryWait is how long a delivery waits for room among the
// payloads in memory before it is answered 503 (WebhookConfig.MemoryWait):
// well inside GitLab's 10 s webhook timeout, so GitLab reads the answer
// and retries rather than timing out.
const DefaultWebhookMemoryWait = 5 * time.Second

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
	// Memory bounds the bytes of payloads held at once, from reading the
	// body to storing it; default DefaultWebhookMemory. A payload counts
	// its Content-Length (one without counts twice MaxBody, which its
	// growing buffer may reach); one larger than Memory takes all of it,
	// so the largest payloads go one at a time.
	Memory int64
	// MemoryWait is how long a delivery may wait for room before it gets
	// 503 with Retry-After; default DefaultWebhookMemoryWait.
	MemoryWait time.Duration
	// Connection names the GitLab connection the endpoint serves ("" or
	// store.DefaultConnection: the environment's). Its deliveries are
	// stored marked with it (ConnectionHeader) and their events get its
	// ids (store.ConnectionEventID).
	Connection string
}

// ConnectionHeader is the stored header of a delivery that names its
// connection. It is set by the endpoint the delivery came in on, never
// taken from the request: keptHeaders keeps no header of that name.
const ConnectionHeader = "Labtrail-Connection"

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
	mem     *semaphore.Weighted // bytes of payloads in memory (cfg.Memory)
	store   store.DeliveryStore
	enqueue Enqueuer
	log     *slog.Logger
	now     func() time.Time
	obs     Observer
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
	if h.cfg.Memory <= 0 {
		h.cfg.Memory = DefaultWebhookMemory
	}
	if h.cfg.MemoryWait <= 0 {
		h.cfg.MemoryWait = DefaultWebhookMemoryWait
	}
	h.mem = semaphore.NewWeighted(h.cfg.Memory)
	for i, s := range cfg.SigningSecrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil || !strings.HasPrefix(s, "whsec_") || len(key) == 0 {
			return nil, fmt.Errorf("signing secret %d of %d is not a whsec_<base64> signing secret", i+1, len(cfg.SigningSecrets))
		}
		h.keys = append(h.keys, key)
	}
	return h, nil
}

// SetObserver has every delivery's outcome told to o. Set it before the
// handler serves.
func (h *WebhookHandler) SetObserver(o Observer) { h.obs = o }

func writeWebhookError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// ServeHTTP handles POST /api/v1/webhooks/gitlab.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Every answer but those setting it otherwise is a 4xx refusal.
	result := WebhookRejected
	if h.obs != nil {
		defer func() { h.obs.Webhook(WebhookEventLabel(r.Header.Get("X-Gitlab-Event")), result) }()
	}
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
	need := h.reservation(r.ContentLength)
	if !h.admit(r.Context(), need) {
		result = WebhookBusy
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, h.cfg.MemoryWait/time.Second))))
		writeWebhookError(w, http.StatusServiceUnavailable, "too many payloads arriving at once; GitLab will retry it")
		return
	}
	// Released when the handler returns: the body is not needed after it
	// is stored, but the handler still holds it until then.
	defer h.mem.Release(need)
	body, err := readBody(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody), r.ContentLength)
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
	if conn := h.cfg.Connection; conn != "" && conn != store.DefaultConnection {
		d.Headers[ConnectionHeader] = conn
		// Two GitLabs' deliveries never count as retries of each other.
		d.IdempotencyKey = conn + ":" + d.IdempotencyKey
	}
	id, dup, err := h.store.PutDelivery(r.Context(), d)
	if errors.Is(err, store.ErrTooLarge) {
		h.log.Warn("webhook: delivery refused, too large for the store", "event", event, "err", err)
		result = WebhookRejected
		writeWebhookError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	}
	if err != nil {
		h.log.Error("webhook: could not store delivery", "event", event, "err", err)
		result = WebhookError
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
	result = WebhookStored
	if dup {
		result = WebhookDuplicate
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "accepted", "delivery_id": id, "duplicate": dup})
}

// reservation is how many bytes of the memory budget a payload of the
// given Content-Length (-1: unknown) takes.
func (h *WebhookHandler) reservation(contentLength int64) int64 {
	n := contentLength
	if n < 0 {
		// Read into a growing buffer: up to twice the largest payload
		// while it grows.
		n = 2 * h.cfg.MaxBody
	}
	return max(1, min(n, h.cfg.Memory))
}

// admit waits, at most cfg.MemoryWait and while the request lasts, for n
// bytes of the memory budget; false if they did not come in time.
func (h *WebhookHandler) admit(ctx context.Context, n int64) bool {
	if h.mem.TryAcquire(n) {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.MemoryWait)
	defer cancel()
	return h.mem.Acquire(ctx, n) == nil
}

// readBody reads a payload into a buffer of exactly its Content-Length
// when it has one (io.ReadAll's doubling would hold up to twice as much,
// and leave as much again behind as garbage).
func readBody(r io.Reader, contentLength int64) ([]byte, error) {
	if contentLength < 0 {
		return io.ReadAll(r)
	}
	body := make([]byte, contentLength)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	// net/http ends the body at its Content-Length; this only makes sure.
	var extra [1]byte
	if n, err := r.Read(extra[:]); n > 0 || (err != nil && !errors.Is(err, io.EOF)) {
		if err == nil {
			err = errors.New("payload longer than its Content-Length")
		}
		return nil, err
	}
	return body, nil
}

// idempotencyKey is GitLab's Idempotency-Key, shared by the retries and
// manual resends of one delivery. Older GitLab versions send none; their
// retries carry the same payload, so a digest of it stands in.
// X-Gitlab-Event-UUID must not be used: one user action's hooks share it.
func idempotencyKey(h http.Header, event string, body []byte) string {
	if k := strings.TrimSpace(h.Get("Idempotency-Key")); k != "" {
		return k
	}
	// Hashed in parts: a 25 MB payload is not copied to prefix the type.
	hash := sha256.New()
	hash.Write([]byte(event + "\x00"))
	hash.Write(body)
	return "sha256:" + hex.EncodeToString(hash.Sum(nil))
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
	for _, key := range h.keys {
		// id.timestamp.body, written in parts so the body is not copied.
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
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
