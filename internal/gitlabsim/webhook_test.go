package gitlabsim_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
)

type received struct {
	header http.Header
	body   []byte
	obj    map[string]any
}

// receiver is a webhook endpoint that records every request; fail decides
// the status of the n-th request (0-based).
type receiver struct {
	mu   sync.Mutex
	got  []received
	fail func(n int) bool
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var o map[string]any
	_ = json.Unmarshal(b, &o)
	rc.mu.Lock()
	n := len(rc.got)
	rc.got = append(rc.got, received{r.Header.Clone(), b, o})
	rc.mu.Unlock()
	if rc.fail != nil && rc.fail(n) {
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

var signingKey = []byte("labtrail-test-signing-key-32byte")

func hookSim(t *testing.T, rc *receiver, o gitlabsim.Options) *gitlabsim.Sim {
	t.Helper()
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	o.WebhookURL = srv.URL + "/hooks"
	o.WebhookSecret = "hook-secret"
	o.SigningSecret = "whsec_" + base64.StdEncoding.EncodeToString(signingKey)
	o.BaseURL = "http://gitlab.test"
	if o.Now == nil {
		o.Now = fixedClock
	}
	if o.Projects == 0 {
		o.Projects = 2
	}
	if o.MRs == 0 {
		o.MRs = 20
	}
	if o.Pipelines == 0 {
		o.Pipelines = 20
	}
	return gitlabsim.New(o)
}

func flush(t *testing.T, s *gitlabsim.Sim) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.FlushWebhooks(ctx); err != nil {
		t.Fatalf("FlushWebhooks: %v", err)
	}
}

func hnum(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

func hstr(v any) string { s, _ := v.(string); return s }

// idsOf names the objects a payload carries, in labtrail's stable ids.
func idsOf(o map[string]any) []string {
	oa, _ := o["object_attributes"].(map[string]any)
	proj, _ := o["project"].(map[string]any)
	pid := hnum(proj["id"])
	switch hstr(o["object_kind"]) {
	case "merge_request":
		return []string{change.MergeRequestID(pid, hnum(oa["iid"]))}
	case "issue":
		return []string{change.IssueID(pid, hnum(oa["iid"]))}
	case "note":
		return []string{change.NoteID(hnum(o["project_id"]), hnum(oa["id"]))}
	case "pipeline":
		return []string{change.PipelineID(pid, hnum(oa["id"]))}
	case "build":
		return []string{change.JobID(hnum(o["project_id"]), hnum(o["build_id"]))}
	case "deployment":
		return []string{change.DeploymentID(pid, hnum(o["deployment_id"]))}
	case "release":
		return []string{change.ReleaseID(pid, hstr(o["tag"]))}
	case "tag_push":
		return []string{change.TagID(hnum(o["project_id"]), strings.TrimPrefix(hstr(o["ref"]), "refs/tags/"))}
	case "push":
		out := []string{change.BranchID(hnum(o["project_id"]), strings.TrimPrefix(hstr(o["ref"]), "refs/heads/"))}
		for _, c := range o["commits"].([]any) {
			out = append(out, change.CommitID(hnum(o["project_id"]), hstr(c.(map[string]any)["id"])))
		}
		return out
	}
	return nil
}

func TestWebhooksDeliverEveryChange(t *testing.T) {
	rc := &receiver{}
	s := hookSim(t, rc, gitlabsim.Options{Seed: 7})
	before := map[string]time.Time{}
	for _, e := range s.Truth() {
		before[e.ID] = e.UpdatedAt
	}
	for range 6 {
		s.Advance()
	}
	flush(t, s)
	got := rc.all()
	if len(got) == 0 {
		t.Fatal("no webhooks received")
	}

	delivered := map[string]bool{}
	mrUpdated := map[string]string{}
	byEvent := map[string][]received{}
	for _, r := range got {
		h := r.header
		for name, want := range map[string]string{
			"Content-Type": "application/json", "X-Gitlab-Token": "hook-secret",
			"X-Gitlab-Instance": "http://gitlab.test", "User-Agent": "GitLab/17.11.0-ee",
		} {
			if h.Get(name) != want {
				t.Fatalf("%s = %q, want %q", name, h.Get(name), want)
			}
		}
		for _, name := range []string{"X-Gitlab-Event", "X-Gitlab-Webhook-UUID", "X-Gitlab-Event-UUID", "Idempotency-Key", "webhook-id", "webhook-timestamp", "webhook-signature"} {
			if h.Get(name) == "" {
				t.Fatalf("header %s missing", name)
			}
		}
		m := hmac.New(sha256.New, signingKey)
		m.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "."))
		m.Write(r.body)
		if want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)); h.Get("webhook-signature") != want {
			t.Fatalf("webhook-signature %q does not verify (want %q)", h.Get("webhook-signature"), want)
		}
		kind := hstr(r.obj["object_kind"])
		wantEvent := map[string]string{
			"merge_request": "Merge Request Hook", "push": "Push Hook", "tag_push": "Tag Push Hook",
			"pipeline": "Pipeline Hook", "build": "Job Hook", "deployment": "Deployment Hook",
			"issue": "Issue Hook", "note": "Note Hook", "release": "Release Hook",
		}[kind]
		if h.Get("X-Gitlab-Event") != wantEvent {
			t.Fatalf("object_kind %q sent as %q", kind, h.Get("X-Gitlab-Event"))
		}
		byEvent[wantEvent] = append(byEvent[wantEvent], r)
		for _, id := range idsOf(r.obj) {
			delivered[id] = true
		}
		if kind == "merge_request" {
			mrUpdated[idsOf(r.obj)[0]] = hstr(r.obj["object_attributes"].(map[string]any)["updated_at"])
		}
	}
	for _, ev := range []string{"Merge Request Hook", "Push Hook", "Pipeline Hook", "Job Hook", "Issue Hook", "Note Hook", "Deployment Hook"} {
		if len(byEvent[ev]) == 0 {
			t.Errorf("no %s sent", ev)
		}
	}

	// Every object Advance created or changed arrived, except those GitLab
	// sends no hook for (environments, registry images) and system notes.
	hookless := map[change.Kind]bool{change.KindEnvironment: true, change.KindImage: true, change.KindNote: true}
	missing := 0
	for _, e := range s.Truth() {
		if old, ok := before[e.ID]; ok && old.Equal(e.UpdatedAt) || hookless[e.Kind] {
			continue
		}
		if !delivered[e.ID] {
			missing++
			t.Errorf("changed %s (updated_at %s) was never delivered", e.ID, e.UpdatedAt)
		}
		if e.Kind == change.KindMergeRequest {
			if want := e.UpdatedAt.UTC().Format("2006-01-02T15:04:05.000Z"); mrUpdated[e.ID] != want {
				t.Errorf("%s: last hook updated_at %s, REST serves %s", e.ID, mrUpdated[e.ID], want)
			}
		}
		if missing > 10 {
			t.Fatal("too many missing")
		}
	}

	// A merge fires the MR hook and the pushes with one X-Gitlab-Event-UUID.
	merged := false
	for _, r := range byEvent["Merge Request Hook"] {
		if hstr(r.obj["object_attributes"].(map[string]any)["action"]) != "merge" {
			continue
		}
		for _, p := range byEvent["Push Hook"] {
			if p.header.Get("X-Gitlab-Event-UUID") == r.header.Get("X-Gitlab-Event-UUID") && hstr(p.obj["ref"]) == "refs/heads/main" {
				merged = true
			}
		}
	}
	if !merged {
		t.Error("no merge shares its X-Gitlab-Event-UUID with the push to main")
	}

	st := s.Deliveries()
	if st.Hooks != int64(len(got)) || st.Sent != st.Hooks || st.Acknowledged != st.Sent || st.Failed != 0 || st.Dropped != 0 {
		t.Errorf("Deliveries() = %+v with %d received", st, len(got))
	}
	seen := map[string]bool{}
	for _, r := range got {
		if k := r.header.Get("Idempotency-Key"); seen[k] {
			t.Errorf("Idempotency-Key %s reused without duplication", k)
		} else {
			seen[k] = true
		}
	}
}

func TestWebhookFaultRates(t *testing.T) {
	run := func() ([]string, gitlabsim.WebhookStats, []received) {
		rc := &receiver{}
		s := hookSim(t, rc, gitlabsim.Options{Seed: 3, Projects: 4, DropRate: 0.2, DuplicateRate: 0.2, ReorderRate: 0.2})
		for range 12 {
			s.Advance()
		}
		flush(t, s)
		var keys []string
		for _, r := range rc.all() {
			keys = append(keys, r.header.Get("Idempotency-Key"))
		}
		return keys, s.Deliveries(), rc.all()
	}
	keys1, st1, got := run()
	keys2, st2, _ := run()
	if st1 != st2 || strings.Join(keys1, ",") != strings.Join(keys2, ",") {
		t.Fatalf("same seed, different deliveries: %+v vs %+v", st1, st2)
	}
	if st1.Hooks < 200 {
		t.Fatalf("only %d hooks; too few to judge rates", st1.Hooks)
	}
	for name, n := range map[string]int64{"dropped": st1.Dropped, "duplicated": st1.Duplicated, "reordered": st1.Reordered} {
		if share := float64(n) / float64(st1.Hooks); share < 0.1 || share > 0.3 {
			t.Errorf("%s share %.2f, want about 0.2 (%+v)", name, share, st1)
		}
	}
	if int64(len(got)) != st1.Hooks-st1.Dropped+st1.Duplicated || st1.Sent != int64(len(got)) {
		t.Errorf("received %d, stats %+v", len(got), st1)
	}
	// Duplicates: same Idempotency-Key, fresh X-Gitlab-Webhook-UUID.
	byKey := map[string][]received{}
	uuids := map[string]bool{}
	for _, r := range got {
		byKey[r.header.Get("Idempotency-Key")] = append(byKey[r.header.Get("Idempotency-Key")], r)
		if u := r.header.Get("X-Gitlab-Webhook-UUID"); uuids[u] {
			t.Fatalf("X-Gitlab-Webhook-UUID %s sent twice", u)
		} else {
			uuids[u] = true
		}
	}
	dups := 0
	for _, rs := range byKey {
		if len(rs) == 2 {
			dups++
			if string(rs[0].body) != string(rs[1].body) || rs[0].header.Get("X-Gitlab-Event-UUID") != rs[1].header.Get("X-Gitlab-Event-UUID") {
				t.Error("a duplicate differs from its original")
			}
		}
	}
	if int64(dups) != st1.Duplicated {
		t.Errorf("%d keys seen twice, %d duplicated", dups, st1.Duplicated)
	}
	// A different seed perturbs different deliveries.
	rc := &receiver{}
	s := hookSim(t, rc, gitlabsim.Options{Seed: 4, Projects: 4, DropRate: 0.2, DuplicateRate: 0.2, ReorderRate: 0.2})
	for range 12 {
		s.Advance()
	}
	flush(t, s)
	if s.Deliveries() == st1 {
		t.Error("seed 4 gives the same stats as seed 3")
	}
}

func TestWebhookRetriesOn500(t *testing.T) {
	rc := &receiver{fail: func(n int) bool { return n < 3 }}
	s := hookSim(t, rc, gitlabsim.Options{Seed: 7, Projects: 1})
	s.Advance()
	flush(t, s)
	got := rc.all()
	st := s.Deliveries()
	if st.Failed != 3 || st.GaveUp != 0 || st.Acknowledged != st.Hooks || st.Sent != st.Hooks+3 {
		t.Fatalf("Deliveries() = %+v", st)
	}
	// The first delivery was tried four times with one Idempotency-Key and
	// four X-Gitlab-Webhook-UUIDs.
	for i := 1; i < 4; i++ {
		if got[i].header.Get("Idempotency-Key") != got[0].header.Get("Idempotency-Key") {
			t.Fatalf("retry %d has another Idempotency-Key", i)
		}
		if got[i].header.Get("X-Gitlab-Webhook-UUID") == got[i-1].header.Get("X-Gitlab-Webhook-UUID") {
			t.Fatalf("retry %d reuses X-Gitlab-Webhook-UUID", i)
		}
	}

	// A receiver that always fails gets every try, then is given up on.
	bad := &receiver{fail: func(int) bool { return true }}
	s = hookSim(t, bad, gitlabsim.Options{Seed: 7, Projects: 1, DropRate: 0.95})
	s.Advance()
	flush(t, s)
	st = s.Deliveries()
	sent := st.Hooks - st.Dropped
	if sent == 0 || st.Sent != 4*sent || st.Failed != st.Sent || st.GaveUp != sent {
		t.Fatalf("always-500 receiver: %+v", st)
	}
}

// TestWebhookShapes holds every payload the simulator sends to GitLab's
// sample of its kind: each top-level and object_attributes field of the
// sample is present with the same JSON type (null matches any type, as
// samples and live objects differ in which optional fields are set), and
// every value at any depth has the sample's kind (a build's duration is a
// fraction, a pipeline's an integer).
func TestWebhookShapes(t *testing.T) {
	rc := &receiver{}
	s := hookSim(t, rc, gitlabsim.Options{Seed: 11, Projects: 3})
	for range 8 {
		s.Advance()
	}
	flush(t, s)
	samples := map[string]map[string]any{}
	load := func(name string) map[string]any {
		if o, ok := samples[name]; ok {
			return o
		}
		o := readSample(t, filepath.Join("webhooks", name+".json"))[0]
		samples[name] = o
		return o
	}
	checked := map[string]int{}
	for _, r := range rc.all() {
		kind := hstr(r.obj["object_kind"])
		name := map[string]string{"build": "job"}[kind]
		if name == "" {
			name = kind
		}
		if kind == "note" {
			nt := hstr(r.obj["object_attributes"].(map[string]any)["noteable_type"])
			name = map[string]string{"MergeRequest": "note_merge_request", "Issue": "note_issue", "Commit": "note_commit"}[nt]
		}
		sample := load(name)
		checked[name]++
		got := objects(t, r.body)[0]
		compareHook(t, name, "", sample, got)
		if oa, ok := sample["object_attributes"].(map[string]any); ok {
			compareHook(t, name, "object_attributes.", oa, got["object_attributes"].(map[string]any))
		}
		checkKinds(t, name, kindsOf([]map[string]any{sample}), []map[string]any{got})
	}
	for _, name := range []string{"merge_request", "push", "pipeline", "job", "deployment", "issue", "note_merge_request", "note_issue", "tag_push", "release"} {
		if checked[name] == 0 {
			t.Errorf("no %s payload was sent to check", name)
		}
	}
}

func compareHook(t *testing.T, name, prefix string, sample, got map[string]any) {
	t.Helper()
	for k, sv := range sample {
		gv, ok := got[k]
		if !ok {
			t.Errorf("%s: %s%s missing", name, prefix, k)
			continue
		}
		st, gt := jsonType(sv), jsonType(gv)
		if st != gt && st != "null" && gt != "null" {
			t.Errorf("%s: %s%s is %s, GitLab sends %s", name, prefix, k, gt, st)
		}
	}
}
