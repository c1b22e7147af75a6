package digest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/digest"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/store"
)

// receiver stands in for Slack's incoming webhook (or any JSON webhook):
// it answers each POST with the next of its answers (the last one
// repeats) and keeps what it was sent.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	bodies  [][]byte
	times   []time.Time
	answers []answer
}

type answer struct {
	status     int
	retryAfter string
	body       string
	delay      time.Duration
}

func newReceiver(t *testing.T, answers ...answer) *receiver {
	r := &receiver{answers: answers}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.bodies)
		r.bodies, r.times = append(r.bodies, b), append(r.times, time.Now())
		a := answer{status: 200, body: "ok"}
		if len(r.answers) > 0 {
			a = r.answers[min(n, len(r.answers)-1)]
		}
		r.mu.Unlock()
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" || req.URL.Path != "/services/T000/B000/s3cr3t" {
			http.Error(w, "no_service", http.StatusNotFound)
			return
		}
		if a.delay > 0 {
			time.Sleep(a.delay)
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(r.Close)
	return r
}

// slackText is every text of a message, one a line.
func slackText(m digest.SlackMessage) string {
	var out []string
	for _, b := range m.Blocks {
		if b.Text != nil {
			out = append(out, b.Text.Text)
		}
		for _, f := range append(b.Fields, b.Elements...) {
			out = append(out, f.Text)
		}
	}
	return strings.Join(out, "\n")
}

func (r *receiver) url() string { return r.URL + "/services/T000/B000/s3cr3t" }

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

func build(t *testing.T, st store.Store) *digest.Digest {
	t.Helper()
	d, err := digest.Build(context.Background(), metrics.New(st, metrics.Config{}), st,
		digest.Options{Period: digest.Week, Now: now, PublicURL: "https://labtrail.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func sender(st store.DigestStore, log io.Writer) *digest.Sender {
	return &digest.Sender{Store: st, Backoff: 10 * time.Millisecond, Attempts: 4,
		Client: &http.Client{Timeout: 2 * time.Second}, Log: slog.New(slog.NewTextHandler(log, nil))}
}

// TestSlackOnceAcrossRestart sends the digest to the receiver as Slack
// would get it, then again from the same process, from a new process on
// the same database, and from two senders at once: the receiver gets it
// once; the generic webhook gets the same content as JSON, once too.
func TestSlackOnceAcrossRestart(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st, reopen := b.open(t, team())
			slack, hook := newReceiver(t), newReceiver(t)
			d := build(t, st)
			var log bytes.Buffer
			res := sender(st, &log).Send(context.Background(), d, digest.Slack(slack.url()), digest.Webhook(hook.url()))
			if len(res) != 2 || !res[0].Sent || !res[1].Sent || res[0].Attempts != 1 {
				t.Fatalf("send: %+v", res)
			}
			if slack.count() != 1 || hook.count() != 1 {
				t.Fatalf("slack got %d, the webhook %d", slack.count(), hook.count())
			}
			var msg digest.SlackMessage
			if err := json.Unmarshal(slack.bodies[0], &msg); err != nil {
				t.Fatal(err)
			}
			if msg.Blocks[0].Type != "header" || !strings.HasPrefix(msg.Blocks[0].Text.Text, "labtrail week digest") || msg.Text == "" {
				t.Errorf("blocks: %s", slack.bodies[0])
			}
			contains(t, string(slack.bodies[0]), `"type":"section"`, `"type":"context"`, `"fields":[`)
			contains(t, slackText(msg), "<https://gitlab.example.com/team/p1/-/merge_requests/6|Feature 6>",
				"<https://labtrail.example.com/events/mr-1-6|labtrail>", "*Merged*\n6, +4 from 2",
				"*production (production)*\n3, +2 from 1", "<https://gitlab.example.com/team/p1/-/issues/1|Outage>")
			var got map[string]any
			if err := json.Unmarshal(hook.bodies[0], &got); err != nil || got["key"] != d.Key {
				t.Errorf("webhook: %v %s", err, hook.bodies[0])
			}
			want, _ := d.JSON()
			if !bytes.Equal(hook.bodies[0], want) {
				t.Errorf("the webhook's body is not the digest's JSON")
			}
			if strings.Contains(log.String(), "s3cr3t") || !strings.Contains(log.String(), "/services/***") {
				t.Errorf("log: %s", log.String())
			}

			// Again, in this process and after a restart.
			for i, s := range []store.Store{st, reopen()} {
				res := sender(s, io.Discard).Send(context.Background(), build(t, s), digest.Slack(slack.url()), digest.Webhook(hook.url()))
				if !res[0].Skipped || !res[1].Skipped || res[0].Record.SentAt.IsZero() {
					t.Errorf("send %d again: %+v", i, res)
				}
			}
			// Two replicas at once, for the next week.
			later := digest.Options{Period: digest.Week, Now: now.AddDate(0, 0, 7)}
			var wg sync.WaitGroup
			for _, s := range []store.Store{st, reopen()} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d, err := digest.Build(context.Background(), metrics.New(s, metrics.Config{}), s, later)
					if err != nil {
						t.Error(err)
						return
					}
					sender(s, io.Discard).Send(context.Background(), d, digest.Slack(slack.url()))
				}()
			}
			wg.Wait()
			if slack.count() != 2 || hook.count() != 1 {
				t.Errorf("after the repeats slack got %d, the webhook %d", slack.count(), hook.count())
			}
		})
	}
}

// TestRetries: a 429 waits what Retry-After says; a 500 and a timeout are
// retried after the backoff; a 400 is not retried; a destination failing
// every attempt leaves its error, URL masked, in the record sync status
// shows, and the next run sends the period.
func TestRetries(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st, _ := b.open(t, team())
			d := build(t, st)
			send := func(r *receiver, dst func(string) digest.Destination, key string) (digest.Result, string) {
				t.Helper()
				var log bytes.Buffer
				d.Key = key
				return sender(st, &log).Send(context.Background(), d, dst(r.url()))[0], log.String()
			}

			r := newReceiver(t, answer{status: 429, retryAfter: "1", body: "rate_limited"}, answer{status: 200})
			res, _ := send(r, digest.Slack, "k429")
			if !res.Sent || res.Attempts != 2 || r.count() != 2 {
				t.Fatalf("429: %+v, %d posts", res, r.count())
			}
			if gap := r.times[1].Sub(r.times[0]); gap < time.Second {
				t.Errorf("retried %s after a 429 asking for 1 s", gap)
			}

			r = newReceiver(t, answer{status: 500}, answer{status: 503, body: "down"}, answer{status: 200})
			if res, _ := send(r, digest.Webhook, "k500"); !res.Sent || res.Attempts != 3 || r.count() != 3 {
				t.Fatalf("500: %+v, %d posts", res, r.count())
			}

			r = newReceiver(t, answer{status: 200, delay: 2500 * time.Millisecond}, answer{status: 200})
			if res, log := send(r, digest.Slack, "ktimeout"); !res.Sent || res.Attempts != 2 ||
				strings.Contains(log, "s3cr3t") || !strings.Contains(log, "timed out posting to "+r.URL+"/services/***") {
				t.Fatalf("timeout: %+v\n%s", res, log)
			}

			r = newReceiver(t, answer{status: 400, body: "invalid_blocks"})
			res, log := send(r, digest.Slack, "k400")
			if res.Sent || res.Attempts != 1 || r.count() != 1 || res.Err == nil || !strings.Contains(res.Err.Error(), "invalid_blocks") {
				t.Fatalf("400: %+v, %d posts", res, r.count())
			}
			if strings.Contains(log, "s3cr3t") || !strings.Contains(log, "send failed") {
				t.Errorf("log of a failure: %s", log)
			}

			r = newReceiver(t, answer{status: 502, body: "bad gateway"})
			res, _ = send(r, digest.Slack, "kdown")
			if res.Sent || res.Attempts != 4 || r.count() != 4 {
				t.Fatalf("always 502: %+v, %d posts", res, r.count())
			}
			sends, err := st.DigestSends(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			var rec store.DigestSend
			for _, s := range sends {
				if s.Key == "kdown" {
					rec = s
				}
			}
			if !strings.Contains(rec.LastError, "answered 502") || !strings.Contains(rec.LastError, "/services/***") ||
				strings.Contains(rec.LastError, "s3cr3t") || !rec.SentAt.IsZero() || !rec.ClaimedAt.IsZero() {
				t.Errorf("record of the failure: %+v", rec)
			}
			r.answers = []answer{{status: 200}}
			if res, _ := send(r, digest.Slack, "kdown"); !res.Sent || res.Record.Attempts != 2 {
				t.Errorf("the next run: %+v", res)
			}

			// A Retry-After longer than labtrail waits ends the attempts.
			r = newReceiver(t, answer{status: 429, retryAfter: "3600"})
			if res, _ := send(r, digest.Slack, "klong"); res.Sent || r.count() != 1 || !strings.Contains(res.Err.Error(), "retry after 1h0m0s") {
				t.Errorf("a long Retry-After: %+v", res)
			}
		})
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.slack.com/services/T000/B000/XXXX": "https://hooks.slack.com/services/***",
		"https://user:pw@example.com/hook?token=abc":      "https://***@example.com/hook?***",
		"http://example.com":                              "http://example.com",
		"not a url":                                       "(a malformed URL)",
	} {
		if got := digest.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// big is a world that overflows every list of a digest: 400 environments
// with long names, long titles full of mrkdwn's special characters, many
// failing jobs, open merge requests and incidents.
func big() *world {
	w := team()
	long := strings.Repeat("<b>&amp; a very long title ", 200)
	for i := int64(1); i <= 400; i++ {
		w.deploy(2, i, fmt.Sprintf("review/%03d-%s", i, strings.Repeat("x", 300)), lastWeek.Add(time.Duration(i)*time.Minute))
	}
	for i := int64(1); i <= 40; i++ {
		w.mr(3, i, fmt.Sprintf("%d %s", i, long), lastWeek.AddDate(0, 0, -3), lastWeek.Add(time.Duration(i)*time.Hour), int(i)*10, 1)
		w.mr(3, 100+i, fmt.Sprintf("open %d %s", i, long), prevWeek.Add(time.Duration(i)*time.Hour), time.Time{}, 1, 1)
		w.job(3, i, fmt.Sprintf("job-%02d-%s", i, long), "failed", lastWeek.Add(time.Duration(i)*time.Hour))
		w.incident(3, i, fmt.Sprintf("incident %d %s", i, long), prevWeek.Add(time.Duration(i)*time.Hour), time.Time{})
	}
	return w
}

// checkSlackLimits fails t for every part of m beyond Slack's limits.
func checkSlackLimits(t *testing.T, m digest.SlackMessage) {
	t.Helper()
	runes := func(s string) int { return len([]rune(s)) }
	if len(m.Blocks) > digest.SlackMaxBlocks {
		t.Errorf("%d blocks", len(m.Blocks))
	}
	for i, b := range m.Blocks {
		switch b.Type {
		case "header":
			if b.Text == nil || b.Text.Type != "plain_text" || runes(b.Text.Text) > digest.SlackMaxHeaderText {
				t.Errorf("block %d: header %+v", i, b.Text)
			}
		case "section":
			if b.Text == nil && len(b.Fields) == 0 {
				t.Errorf("block %d: a section without text or fields", i)
			}
			if b.Text != nil && runes(b.Text.Text) > digest.SlackMaxText {
				t.Errorf("block %d: text of %d characters", i, runes(b.Text.Text))
			}
			if len(b.Fields) > digest.SlackMaxFields {
				t.Errorf("block %d: %d fields", i, len(b.Fields))
			}
			for _, f := range b.Fields {
				if runes(f.Text) > digest.SlackMaxFieldText {
					t.Errorf("block %d: a field of %d characters", i, runes(f.Text))
				}
			}
		case "context":
			if n := len(b.Elements); n == 0 || n > digest.SlackMaxContextElem {
				t.Errorf("block %d: %d context elements", i, n)
			}
			for _, e := range b.Elements {
				if runes(e.Text) > digest.SlackMaxText {
					t.Errorf("block %d: a context element of %d characters", i, runes(e.Text))
				}
			}
		case "divider":
		default:
			t.Errorf("block %d: type %q", i, b.Type)
		}
	}
}

// TestSlackLimits sends the digest of a big world to the receiver: what
// arrives is within Slack's limits, the special characters of titles are
// escaped, and what is left out is said, with its count.
func TestSlackLimits(t *testing.T) {
	st := big().store(t)
	projects := make([]string, 200)
	for i := range projects {
		projects[i] = fmt.Sprintf("a-group/with-a-long-name/project-%03d", i)
	}
	d, err := digest.Build(context.Background(), metrics.New(st, metrics.Config{}), st,
		digest.Options{Period: digest.Week, Now: now, PublicURL: "https://labtrail.example.com", Projects: projects, Group: "a-group"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(d.Deployments.Environments); n != 403 {
		t.Fatalf("%d environments in the digest", n)
	}
	r := newReceiver(t)
	res := sender(st, io.Discard).Send(context.Background(), d, digest.Slack(r.url()))
	if !res[0].Sent || r.count() != 1 {
		t.Fatalf("send: %+v", res)
	}
	var m digest.SlackMessage
	if err := json.Unmarshal(r.bodies[0], &m); err != nil {
		t.Fatal(err)
	}
	checkSlackLimits(t, m)
	if len(m.Blocks) != digest.SlackMaxBlocks {
		t.Errorf("%d blocks: the environments could have taken the rest", len(m.Blocks))
	}
	text := slackText(m)
	if strings.Contains(text, "<b>") || !strings.Contains(text, "&lt;b&gt;&amp;amp;") {
		t.Errorf("titles are not escaped")
	}
	// Every environment is in a field or counted in "…and N more".
	shown := 0
	for _, b := range m.Blocks {
		for _, f := range b.Fields {
			if strings.HasPrefix(f.Text, "*review/") {
				shown++
			}
		}
	}
	var more int
	if m := regexp.MustCompile(`…and (\d+) more environments`).FindStringSubmatch(text); m == nil {
		t.Fatalf("no count of the environments left out")
	} else {
		more, _ = strconv.Atoi(m[1])
	}
	if shown+more != 401 || shown == 0 {
		t.Errorf("%d review environments shown and %d said to be left out, of 401", shown, more)
	}
	// Lists keep TopN items, each title cut, not the line's links.
	contains(t, text, "*Largest merged*", "*Slowest open*", "*Most failing jobs*", "*Open incidents*",
		"(<https://labtrail.example.com/events/mr-3-40|labtrail>)")
	for _, b := range m.Blocks {
		if b.Text != nil && strings.Count(b.Text.Text, "<") != strings.Count(b.Text.Text, ">") {
			t.Errorf("a link cut in: %s", b.Text.Text)
		}
	}
	// The message's other forms keep everything.
	if !strings.Contains(d.Text(), "review/400-") {
		t.Error("the text form lost an environment")
	}
}
