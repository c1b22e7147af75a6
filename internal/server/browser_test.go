package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// The dashboard in a real browser: Debian's Chromium, headless, driven
// through the DevTools protocol (chromedp) against labtrail on loopback,
// filled from the simulator by a sync and by webhooks. The pages are the
// navigation's (server.NavPaths) and a detail page of each main kind, so a
// page added to the navigation is covered without touching this test.
//
// It skips only where Chromium is missing and CI is unset; .ci/run
// installs Chromium, so in CI it always runs. With LABTRAIL_SCREENSHOTS=1
// it also writes docs/screenshots/<page>-{desktop,phone}.png.

// browserWorld is labtrail serving a synced simulated GitLab whose changes
// since also came in as webhooks.
type browserWorld struct {
	base, simBase string
	st            store.Store
}

const browserHookSecret = "browser-hook-secret"

func newBrowserWorld(t *testing.T) *browserWorld {
	t.Helper()
	ctx := context.Background()
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	apiLn, simLn := listen(), listen()
	w := &browserWorld{base: "http://" + apiLn.Addr().String(), simBase: "http://" + simLn.Addr().String()}

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "browser.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w.st = st

	// The simulator's payloads name its own address as the instance, so
	// every GitLab link on a page points at it.
	// No rate limit: its headers then show GitLab.com's 2,000 a minute.
	sim := gitlabsim.New(gitlabsim.Options{Seed: 13, Projects: 4, Groups: 2, MRs: 40, Pipelines: 60, Token: "tok",
		WebhookURL: w.base + "/api/v1/webhooks/gitlab", WebhookSecret: browserHookSecret, BaseURL: w.simBase})
	simSrv := &httptest.Server{Listener: simLn, Config: &http.Server{Handler: sim}}
	simSrv.Start()
	t.Cleanup(simSrv.Close)

	audit := ingest.NewAuditLog(st, 0, quiet)
	cl, err := gitlab.New(gitlab.Config{URL: w.simBase, Token: "tok", RequestsPerMinute: 1 << 20, Audit: audit.Record})
	if err != nil {
		t.Fatal(err)
	}
	poller := &ingest.Poller{GitLab: cl, Store: st, Log: quiet}
	conv := &ingest.Converter{Store: st, Log: quiet, Selection: poller.Selection}
	wh, err := ingest.NewWebhookHandler(ingest.WebhookConfig{Secrets: []string{browserHookSecret}}, st, conv, quiet)
	if err != nil {
		t.Fatal(err)
	}
	api := server.New(st, quiet)
	api.EnableMetrics(metrics.New(st, metrics.Config{}))
	api.EnableWebhooks(wh, conv.Replay)
	srv := &http.Server{Handler: api}
	go func() { _ = srv.Serve(apiLn) }()
	t.Cleanup(func() { srv.Close() })
	convCtx, stopConv := context.WithCancel(ctx)
	convDone := make(chan struct{})
	go func() { conv.Run(convCtx); close(convDone) }()
	t.Cleanup(func() { stopConv(); <-convDone })

	res, err := poller.SyncAll(ctx)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		t.Fatal(err)
	}
	// What happens next in GitLab arrives as webhooks.
	for range 3 {
		sim.Advance()
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sim.FlushWebhooks(fctx); err != nil {
		t.Fatalf("webhooks not delivered: %v", err)
	}
	for {
		p, err := st.ListDeliveries(ctx, store.DeliveryFilter{Status: store.DeliveryPending, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Deliveries) == 0 {
			break
		}
		if fctx.Err() != nil {
			t.Fatal("webhook deliveries still pending after 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	all, err := st.ListDeliveries(ctx, store.DeliveryFilter{Limit: 1})
	if err != nil || len(all.Deliveries) == 0 {
		t.Fatalf("no webhook delivery stored: %v", err)
	}
	if err := audit.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return w
}

// chromiumPath is Debian's Chromium, or "" when it is not installed.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browserProblems collects what must not happen while a page loads:
// console errors, uncaught exceptions, error log entries (a CSP refusal is
// one), failed requests, answers of 400 and above, and requests to any
// host but labtrail's.
type browserProblems struct {
	host string
	mu   sync.Mutex
	list []string
}

func (p *browserProblems) add(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, fmt.Sprintf(format, args...))
}

// take returns the problems seen since the last take.
func (p *browserProblems) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.list
	p.list = nil
	return l
}

// listen is given to chromedp.Listen: it runs in the tab's read loop, so
// it only records.
func (p *browserProblems) listen(ev any) {
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range e.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			p.add("console.%s: %s", e.Type, strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		text := d.Text
		if d.Exception != nil {
			text += " " + d.Exception.Description
		}
		p.add("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, text)
	case *cdplog.EventEntryAdded:
		if e.Entry.Level == cdplog.EntryLevelError {
			p.add("log %s: %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL)
		}
	case *network.EventLoadingFailed:
		if !e.Canceled {
			p.add("request failed (%s): %s %s", e.Type, e.ErrorText, e.BlockedReason)
		}
	case *network.EventResponseReceived:
		if e.Response.Status >= 400 {
			p.add("%s answered %d", e.Response.URL, e.Response.Status)
		}
	case *network.EventRequestWillBeSent:
		u, err := url.Parse(e.Request.URL)
		if err != nil || (u.Scheme != "data" && u.Host != p.host) {
			p.add("request to another host: %s", e.Request.URL)
		}
	}
}

// startBrowser starts Chromium headless with a profile of its own and
// returns a tab's context.
func startBrowser(t *testing.T, exe string, problems *browserProblems) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithListener(problems.listen))
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	return ctx
}

// browserPage is one page the test visits.
type browserPage struct {
	name, path string
}

// browserPages are the navigation's pages and the detail page of a merge
// request, a pipeline and a deployment.
func browserPages(t *testing.T, w *browserWorld) []browserPage {
	t.Helper()
	var ps []browserPage
	for _, p := range server.NavPaths() {
		name := strings.Trim(p, "/")
		if name == "" {
			name = "overview"
		}
		ps = append(ps, browserPage{name, p})
	}
	for _, kind := range []string{"merge_request", "pipeline", "deployment"} {
		var ans struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		browserJSON(t, w.base+"/api/v1/events?limit=1&kind="+kind, &ans)
		if len(ans.Events) == 0 {
			t.Fatalf("the simulated world has no %s", kind)
		}
		ps = append(ps, browserPage{"event-" + strings.ReplaceAll(kind, "_", "-"), "/events/" + url.PathEscape(ans.Events[0].ID)})
	}
	return ps
}

func browserJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// visit loads u and waits for its load event; what went wrong on the way
// is in problems. It tells whether the page answered 200.
func visit(t *testing.T, ctx context.Context, u string) bool {
	t.Helper()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		t.Fatalf("load %s: %v", u, err)
	}
	if resp.Status != 200 {
		t.Errorf("%s: status %d", u, resp.Status)
		return false
	}
	return true
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// shownJS is what a page shows of its data: the figures (data-value) and
// the text of its rows, lists and articles, leaving out the filter form
// and the line saying which window the figures are over.
const shownJS = `(() => {
  const skip = e => e.closest('form.filters, #source, nav');
  return Array.from(document.querySelectorAll('main [data-value], main tbody tr, main li, main article, main .empty'))
    .filter(e => !skip(e))
    .map(e => e.hasAttribute('data-value') ? e.id + '=' + e.getAttribute('data-value') : e.innerText.trim());
})()`

// needChromium is Chromium's path; without it a test skips, or fails in
// CI.
func needChromium(t *testing.T) string {
	t.Helper()
	exe := chromiumPath()
	if exe == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed: .ci/run installs it (apt-get install chromium)")
		}
		t.Skip("chromium is not installed (apt-get install chromium); in CI this test fails instead")
	}
	return exe
}

func TestBrowserPages(t *testing.T) {
	exe := needChromium(t)
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("syncs a simulated world and drives a browser")
	}
	w := newBrowserWorld(t)
	base, _ := url.Parse(w.base)
	problems := &browserProblems{host: base.Host}
	ctx := startBrowser(t, exe, problems)
	pages := browserPages(t, w)
	shots := os.Getenv("LABTRAIL_SCREENSHOTS") != ""
	if shots {
		if err := os.MkdirAll("../../docs/screenshots", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	screenshot := func(name string) {
		b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join("../../docs/screenshots", name+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	links := map[string]string{} // link -> a page it is on
	t.Run("desktop", func(t *testing.T) {
		for _, p := range pages {
			problems.take()
			ok := visit(t, ctx, w.base+p.path)
			for _, l := range eval[[]string](t, ctx, `Array.from(document.querySelectorAll('a[href]'), a => a.href)`) {
				if _, ok := links[l]; !ok {
					links[l] = p.path
				}
			}
			// A round trip after the load: what the page's scripts logged
			// by now has been heard.
			if h := eval[string](t, ctx, `document.querySelector('main') ? 'main' : ''`); h == "" {
				t.Errorf("%s: no <main>", p.path)
			}
			for _, pr := range problems.take() {
				t.Errorf("%s: %s", p.path, pr)
			}
			if ok && shots && (!strings.HasPrefix(p.name, "event-") || p.name == "event-merge-request") {
				screenshot(p.name + "-desktop")
			}
		}
	})

	t.Run("links", func(t *testing.T) {
		sim, _ := url.Parse(w.simBase)
		checked := 0
		for l, on := range links {
			u, err := url.Parse(l)
			if err != nil {
				t.Errorf("%s: bad link %q", on, l)
				continue
			}
			switch u.Host {
			case base.Host:
				u.Fragment = ""
				req, _ := http.NewRequest("GET", u.String(), nil)
				req.Header.Set("Accept", "text/html")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("%s links to %s: %d", on, u.RequestURI(), resp.StatusCode)
				}
				checked++
			case sim.Host:
				// A link into GitLab: the simulator's, not fetched.
			default:
				t.Errorf("%s links to another host: %s", on, l)
			}
		}
		if checked < len(pages) {
			t.Errorf("only %d links to labtrail's own pages checked", checked)
		}
	})

	t.Run("filters", func(t *testing.T) {
		for _, p := range pages {
			if strings.HasPrefix(p.name, "event-") {
				continue
			}
			browserFilters(t, ctx, w.base+p.path, problems)
		}
	})

	t.Run("overview equals the metrics API", func(t *testing.T) {
		ps, err := w.st.Projects(context.Background())
		if err != nil || len(ps) == 0 {
			t.Fatal(ps, err)
		}
		for _, q := range []string{"", "?project=" + url.QueryEscape(ps[0].Path), "?window=90d"} {
			browserOverview(t, ctx, w.base, q)
		}
	})

	t.Run("replay a delivery", func(t *testing.T) {
		// The sync page's Replay button, sent by htmx: the page's main
		// part is replaced by the one the redirect leads to, which says
		// how the replay went.
		problems.take()
		visit(t, ctx, w.base+"/sync")
		id := eval[string](t, ctx, `(() => { const r = document.querySelector('#deliveries-table tbody tr'); return r ? r.id.replace('delivery-', '') : ''; })()`)
		if id == "" {
			t.Fatal("the sync page lists no delivery")
		}
		if err := chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS(`#delivery-`+id+` button`)),
			chromedp.WaitVisible(chromedp.ID("replay-result")),
		); err != nil {
			t.Fatalf("replay delivery %s: %v", id, err)
		}
		got := eval[string](t, ctx, `document.getElementById('replay-result').innerText`)
		if !strings.Contains(got, "Delivery "+id+" ") || !strings.Contains(got, "was replayed") {
			t.Errorf("after Replay the page says %q", got)
		}
		if loc := eval[string](t, ctx, `location.pathname`); loc != "/sync" {
			t.Errorf("htmx left the page for %s", loc)
		}
		for _, pr := range problems.take() {
			t.Errorf("replay: %s", pr)
		}
	})

	t.Run("phone", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(400, 850, chromedp.EmulateMobile, chromedp.EmulateTouch)); err != nil {
			t.Fatal(err)
		}
		defer chromedp.Do(ctx, chromedp.ResetViewport())
		for _, p := range pages {
			problems.take()
			ok := visit(t, ctx, w.base+p.path)
			wide := eval[[]int](t, ctx, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`)
			if wide[0] > wide[1] {
				culprits := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1 && !e.closest('.table-wrap')).slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + String(e.className).split(' ').join('.') : ''))`)
				t.Errorf("%s at 400 px: scrolls sideways (scrollWidth %d > clientWidth %d); too wide: %v", p.path, wide[0], wide[1], culprits)
			}
			for _, pr := range problems.take() {
				t.Errorf("%s (phone): %s", p.path, pr)
			}
			if ok && shots && (!strings.HasPrefix(p.name, "event-") || p.name == "event-merge-request") {
				screenshot(p.name + "-phone")
			}
		}
	})
}

// browserFilters drives a page's filter form: each of its project,
// window and kind fields, changed and applied, must change what the page
// shows.
func browserFilters(t *testing.T, ctx context.Context, u string, problems *browserProblems) {
	t.Helper()
	visit(t, ctx, u)
	fields := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('form.filters select[name]'), s => s.name)`)
	if len(fields) == 0 {
		t.Errorf("%s: no filter form", u)
		return
	}
	tried := 0
	for _, field := range []string{"project", "window", "kind"} {
		if !slices.Contains(fields, field) {
			continue
		}
		if tried > 0 {
			visit(t, ctx, u) // back to the page's defaults
		}
		problems.take()
		before := eval[[]string](t, ctx, shownJS)
		// Pick a value other than the current one: the first project,
		// pipelines, and for the window one that ends 45 days ago (typed
		// into the form's dates, so that a list of the newest changes,
		// which a shorter window ending now would not change, changes
		// too), or else another window.
		choice := eval[string](t, ctx, fmt.Sprintf(`(() => {
  const s = document.querySelector('form.filters select[name=%q]');
  const pick = v => { for (const o of s.options) o.selected = o.value === v; return v; };
  if (s.name === 'project') {
    const opts = Array.from(s.options).filter(o => o.value !== '');
    return opts.length ? 'project=' + encodeURIComponent(pick(opts[0].value)) : '';
  }
  if (s.name === 'kind') return 'kind=' + pick('pipeline');
  const until = document.querySelector('form.filters input[name=until]');
  if (until) {
    const d = new Date(Date.now() - 45 * 86400000).toISOString().slice(0, 10);
    until.value = d;
    if (Array.from(s.options).some(o => o.value === 'custom')) pick('custom');
    return 'until=' + d;
  }
  return 'window=' + pick(s.value === '7d' ? '90d' : '7d');
})()`, field))
		if choice == "" {
			t.Errorf("%s: the %s field offers nothing to choose", u, field)
			continue
		}
		_, err := chromedp.Run(ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil,
			chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`))))
		if err != nil {
			t.Fatalf("%s: submit the filter: %v", u, err)
		}
		loc := eval[string](t, ctx, `location.href`)
		if !strings.Contains(loc, choice) {
			t.Errorf("%s: after choosing %s the URL is %s", u, choice, loc)
		}
		after := eval[[]string](t, ctx, shownJS)
		if slices.Equal(before, after) {
			t.Errorf("%s: %s changed nothing shown (%d items)", u, choice, len(after))
		}
		for _, pr := range problems.take() {
			t.Errorf("%s with %s: %s", u, choice, pr)
		}
		tried++
	}
	if tried == 0 {
		t.Errorf("%s: the filter form has none of project, window and kind: %v", u, fields)
	}
}

// browserOverview compares the overview's four keys, as the page shows
// them (id="dora-<key>" data-value), with GET /api/v1/metrics/dora over
// the window the page says its figures are over.
func browserOverview(t *testing.T, ctx context.Context, base, query string) {
	t.Helper()
	visit(t, ctx, base+"/"+query)
	type figure struct {
		ID, Value string
		Found     bool
	}
	read := func(id string) figure {
		f := eval[figure](t, ctx, fmt.Sprintf(`(() => { const e = document.getElementById(%q);
  return e ? {ID: e.id, Value: e.getAttribute('data-value') || '', Found: e.hasAttribute('data-value')} : {ID: %q, Value: '', Found: false}; })()`, id, id))
		if !f.Found {
			t.Errorf("overview%s: no element id=%q with data-value", query, id)
		}
		return f
	}
	since, until := read("window-since"), read("window-until")
	if !since.Found || !until.Found {
		return
	}
	q, _ := url.ParseQuery(strings.TrimPrefix(query, "?"))
	api := url.Values{"since": {since.Value}, "until": {until.Value}}
	if p := q.Get("project"); p != "" {
		api.Set("project", p)
	}
	var d metrics.DORA
	browserJSON(t, base+"/api/v1/metrics/dora?"+api.Encode(), &d)
	shown := 0
	for _, k := range []struct {
		id   string
		want *float64
	}{
		{"dora-deployment-frequency", d.DeploymentFrequency.PerDay},
		{"dora-lead-time", d.LeadTime.MedianSeconds},
		{"dora-change-failure-rate", d.ChangeFailureRate.Rate},
		{"dora-time-to-restore", d.TimeToRestore.MedianSeconds},
	} {
		f := read(k.id)
		if !f.Found {
			continue
		}
		if k.want == nil {
			if f.Value != "" {
				t.Errorf("overview%s: %s shows %s, the API has none", query, k.id, f.Value)
			}
			continue
		}
		got, err := strconv.ParseFloat(f.Value, 64)
		if err != nil || math.Abs(got-*k.want) > 1e-9*math.Max(1, math.Abs(*k.want)) {
			t.Errorf("overview%s: %s shows %q, the API answers %v", query, k.id, f.Value, *k.want)
		}
		shown++
	}
	if query == "" && shown == 0 {
		t.Errorf("overview: none of the four keys has a figure over the simulated world")
	}
}
