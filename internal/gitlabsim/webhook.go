package gitlabsim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Webhooks: with Options.WebhookURL set, every change Advance makes is
// POSTed there as GitLab's project webhooks do (docs.gitlab.com
// user/project/integrations/webhooks.md "Delivery headers" and
// webhook_events.md). Payloads are built under the world lock right after
// the change, so they carry what the REST API serves at that moment, and
// are sent by one background worker, so Advance never waits on HTTP.
//
// Deliveries are sent one at a time in the order Advance made them, except
// that DropRate, DuplicateRate and ReorderRate perturb that order the way a
// real network and GitLab's retries do. Which deliveries are perturbed
// follows from the seed and the delivery's sequence number only.

// WebhookStats counts webhook deliveries. A delivery is one hook (one
// payload); an attempt is one POST of it.
type WebhookStats struct {
	Hooks        int64 `json:"hooks"`        // deliveries Advance produced
	Sent         int64 `json:"sent"`         // POST attempts made, retries and duplicates included
	Dropped      int64 `json:"dropped"`      // deliveries deliberately never sent (DropRate)
	Duplicated   int64 `json:"duplicated"`   // deliveries sent twice (DuplicateRate)
	Reordered    int64 `json:"reordered"`    // deliveries held back and sent after the next one (ReorderRate)
	Failed       int64 `json:"failed"`       // attempts answered non-2xx or failing with an error
	Acknowledged int64 `json:"acknowledged"` // attempts answered 2xx
	GaveUp       int64 `json:"gave_up"`      // deliveries whose every attempt failed
}

// webhookAttempts is how many times one delivery is tried. GitLab retries
// a failing hook with backoff (and eventually disables it); a few tries
// keep tests fast while exercising the receiver's deduplication.
const webhookAttempts = 4

// webhookBackoff is the wait before retry n (1-based): 50ms, 100ms, 200ms.
func webhookBackoff(n int) time.Duration { return 50 * time.Millisecond << (n - 1) }

// delivery is one hook ready to send.
type delivery struct {
	seq       uint64
	event     string // X-Gitlab-Event
	eventUUID string // X-Gitlab-Event-UUID: shared by the hooks of one action
	key       string // Idempotency-Key (and webhook-id): same for every attempt
	body      []byte
	dup       bool // send a second time after the first attempt succeeds
}

type webhooks struct {
	url, token string
	signKey    []byte
	instance   string
	userAgent  string
	seed       uint64
	drop, dup  float64
	reorder    float64
	client     *http.Client

	mu      sync.Mutex
	queue   []*delivery
	held    *delivery // reordered: sent after the next delivery
	running bool      // the worker goroutine is alive
	busy    int       // deliveries taken by the worker and not finished
	seq     uint64    // deliveries produced
	events  uint64    // event UUIDs handed out
	tries   uint64    // attempts made, for X-Gitlab-Webhook-UUID
	stats   WebhookStats
	now     func() time.Time
}

func newWebhooks(o Options, now func() time.Time) *webhooks {
	if o.WebhookURL == "" {
		return nil
	}
	h := &webhooks{
		url: o.WebhookURL, token: o.WebhookSecret, instance: o.BaseURL,
		userAgent: "GitLab/" + o.Version, seed: uint64(o.Seed),
		drop: o.DropRate, dup: o.DuplicateRate, reorder: o.ReorderRate,
		client: &http.Client{Timeout: 10 * time.Second}, now: now,
	}
	if k, ok := strings.CutPrefix(o.SigningSecret, "whsec_"); ok {
		if b, err := base64.StdEncoding.DecodeString(k); err == nil {
			h.signKey = b
		}
	}
	if o.SigningSecret != "" && h.signKey == nil {
		// Not in whsec_<base64> form: sign with the bytes as given rather
		// than silently sending unsigned hooks.
		h.signKey = []byte(o.SigningSecret)
	}
	return h
}

// uuid is a version-4-shaped UUID derived from the seed, so runs repeat.
func (h *webhooks) uuid(kind, n uint64) string {
	a, b := mix(h.seed, kind, n), mix(h.seed, kind^0xabcdef, n)
	a = a&^(0xf<<12) | 4<<12   // version 4
	b = b&^(0x3<<62) | 0x2<<62 // RFC 4122 variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

func (h *webhooks) draw(n, k uint64) float64 {
	return float64(mix(h.seed^0x77686b, n, k)>>11) / (1 << 53)
}

// newEventUUID hands out the X-Gitlab-Event-UUID of one user action.
func (h *webhooks) newEventUUID() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events++
	return h.uuid(1, h.events)
}

// enqueue queues hooks in order, applying drop, duplicate and reorder, and
// makes sure the worker runs.
func (h *webhooks) enqueue(hooks []hook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range hooks {
		h.seq++
		n := h.seq
		h.stats.Hooks++
		d := &delivery{seq: n, event: k.event, eventUUID: k.eventUUID, key: h.uuid(2, n), body: k.body}
		if h.draw(n, 1) < h.drop {
			h.stats.Dropped++
			continue
		}
		if h.draw(n, 2) < h.dup {
			d.dup = true
			h.stats.Duplicated++
		}
		prev := h.held
		h.held = nil
		if prev == nil && h.draw(n, 3) < h.reorder {
			h.held = d
			h.stats.Reordered++
			continue
		}
		h.queue = append(h.queue, d)
		if prev != nil {
			h.queue = append(h.queue, prev)
		}
	}
	h.start()
}

// start runs the worker if it is not running; h.mu is held.
func (h *webhooks) start() {
	if h.running || len(h.queue) == 0 {
		return
	}
	h.running = true
	go h.work()
}

// work sends queued deliveries until the queue is empty, then exits, so an
// idle Sim holds no goroutine.
func (h *webhooks) work() {
	for {
		h.mu.Lock()
		if len(h.queue) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		d := h.queue[0]
		h.queue = h.queue[1:]
		h.busy++
		h.mu.Unlock()

		ok := h.deliver(d)
		if ok && d.dup {
			h.deliver(d)
		}

		h.mu.Lock()
		h.busy--
		if !ok {
			h.stats.GaveUp++
		}
		h.mu.Unlock()
	}
}

// deliver tries d up to webhookAttempts times with backoff and reports
// whether an attempt was acknowledged.
func (h *webhooks) deliver(d *delivery) bool {
	for attempt := 1; attempt <= webhookAttempts; attempt++ {
		if attempt > 1 {
			time.Sleep(webhookBackoff(attempt - 1))
		}
		if h.attempt(d) {
			return true
		}
	}
	return false
}

func (h *webhooks) attempt(d *delivery) bool {
	h.mu.Lock()
	h.tries++
	hookUUID := h.uuid(3, h.tries)
	h.stats.Sent++
	h.mu.Unlock()

	ok := false
	req, err := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(d.body))
	if err == nil {
		hd := req.Header
		hd.Set("Content-Type", "application/json")
		hd.Set("User-Agent", h.userAgent)
		hd.Set("X-Gitlab-Event", d.event)
		hd.Set("X-Gitlab-Instance", h.instance)
		hd.Set("X-Gitlab-Webhook-UUID", hookUUID)
		hd.Set("X-Gitlab-Event-UUID", d.eventUUID)
		hd.Set("Idempotency-Key", d.key)
		if h.token != "" {
			hd.Set("X-Gitlab-Token", h.token)
		}
		if h.signKey != nil {
			stamp := strconv.FormatInt(h.now().Unix(), 10)
			hd.Set("webhook-id", d.key)
			hd.Set("webhook-timestamp", stamp)
			hd.Set("webhook-signature", "v1,"+sign(h.signKey, d.key, stamp, d.body))
		}
		var resp *http.Response
		resp, err = h.client.Do(req)
		if err == nil {
			resp.Body.Close()
			ok = resp.StatusCode >= 200 && resp.StatusCode < 300
		}
	}
	h.mu.Lock()
	if ok {
		h.stats.Acknowledged++
	} else {
		h.stats.Failed++
	}
	h.mu.Unlock()
	return ok
}

// sign is the Standard Webhooks signature: base64 of HMAC-SHA256 over
// "{id}.{timestamp}.{body}".
func sign(key []byte, id, stamp string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + stamp + "."))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Deliveries returns the webhook counts; zero when webhooks are off.
func (s *Sim) Deliveries() WebhookStats {
	if s.hooks == nil {
		return WebhookStats{}
	}
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return s.hooks.stats
}

// FlushWebhooks waits until every delivery made so far has been sent (or
// given up on), including one held back for reordering, or until ctx is
// done.
func (s *Sim) FlushWebhooks(ctx context.Context) error {
	h := s.hooks
	if h == nil {
		return nil
	}
	h.mu.Lock()
	if h.held != nil {
		h.queue = append(h.queue, h.held)
		h.held = nil
		h.start()
	}
	h.mu.Unlock()
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		h.mu.Lock()
		idle := len(h.queue) == 0 && h.busy == 0
		h.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
