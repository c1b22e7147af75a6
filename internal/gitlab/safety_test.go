package gitlab

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// mutatedSample is a webhook sample with change applied to its decoded
// JSON.
func mutatedSample(t *testing.T, name string, change func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(webhookSample(t, name), &m); err != nil {
		t.Fatal(err)
	}
	change(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func obj(m map[string]any, k string) map[string]any { return m[k].(map[string]any) }

// A payload whose numbers or names make a malformed id is refused as
// malformed, saying which part is wrong, and yields no event.
func TestWebhookMalformedIDsRefused(t *testing.T) {
	withWebhookNow(t)
	for _, c := range []struct {
		name, sample string
		change       func(m map[string]any)
		msg          string
	}{
		{"negative iid", "merge_request.json", func(m map[string]any) { obj(m, "object_attributes")["iid"] = -5 },
			`iid "-5" is not a positive number`},
		{"negative issue iid", "issue.json", func(m map[string]any) { obj(m, "object_attributes")["iid"] = -1 },
			`iid "-1"`},
		{"negative project", "job.json", func(m map[string]any) { m["project_id"] = -1 },
			`project id "" is not a positive number`},
		{"negative pipeline id", "pipeline.json", func(m map[string]any) { obj(m, "object_attributes")["id"] = -31 },
			`pipeline id "-31"`},
		{"commit id that is a date", "push.json", func(m map[string]any) {
			m["commits"].([]any)[0].(map[string]any)["id"] = "1970-01-01T00:00:00+14:00"
		}, `sha "1970-01-01T00:00:00+14:00" is not 7 to 64 lowercase hex digits`},
		{"empty tag name", "tag_push.json", func(m map[string]any) { m["ref"] = "refs/tags/" }, "tag"},
		{"release with a newline in its tag", "release.json", func(m map[string]any) { m["tag"] = "v1\n" },
			`control character`},
	} {
		t.Run(c.name, func(t *testing.T) {
			wh, err := ParseWebhook(webhookSamples[c.sample], mutatedSample(t, c.sample, c.change))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("err %q lacks %q", err, c.msg)
			}
			if len(wh.Events) != 0 || len(wh.NeedsDetails) != 0 {
				t.Errorf("events %v, needs %v from a refused payload", wh.Events, wh.NeedsDetails)
			}
		})
	}
}

// Only http(s) URLs, and paths from GitLab's root, reach an event, in its
// web_url and in its attributes.
func TestWebhookUnsafeURLsDropped(t *testing.T) {
	withWebhookNow(t)
	for _, c := range []struct {
		sample string
		change func(m map[string]any)
		check  func(t *testing.T, wh Webhook)
	}{
		{"issue.json", func(m map[string]any) { obj(m, "object_attributes")["url"] = "javascript:alert(1)" },
			func(t *testing.T, wh Webhook) {
				if wh.Events[0].WebURL != "" {
					t.Errorf("web_url %q", wh.Events[0].WebURL)
				}
			}},
		{"merge_request.json", func(m map[string]any) { obj(m, "object_attributes")["url"] = " JAVASCRIPT:alert(1)" },
			func(t *testing.T, wh Webhook) {
				if wh.Events[0].WebURL != "" {
					t.Errorf("web_url %q", wh.Events[0].WebURL)
				}
			}},
		{"release.json", func(m map[string]any) {
			m["url"] = "data:text/html,x"
			obj(m, "assets")["links"] = []any{map[string]any{"id": 1, "name": "bin", "url": "javascript:x()", "link_type": "other"}}
		}, func(t *testing.T, wh Webhook) {
			e := wh.Events[0]
			links := e.Attrs["links"].([]map[string]any)
			if e.WebURL != "" || len(links) != 1 || links[0]["url"] != "" {
				t.Errorf("web_url %q, links %v", e.WebURL, links)
			}
		}},
		{"issue.json", func(m map[string]any) {
			// A path from GitLab's root is joined to GitLab's URL, taken
			// from the project's web_url less its path.
			obj(m, "object_attributes")["url"] = "/gitlabhq/gitlab-test/-/issues/23"
		}, func(t *testing.T, wh Webhook) {
			if got := wh.Events[0].WebURL; got != "http://example.com/gitlabhq/gitlab-test/-/issues/23" {
				t.Errorf("web_url %q", got)
			}
		}},
	} {
		wh, err := ParseWebhook(webhookSamples[c.sample], mutatedSample(t, c.sample, c.change))
		if err != nil {
			t.Fatalf("%s: %v", c.sample, err)
		}
		if len(wh.Events) == 0 {
			t.Fatalf("%s: no events", c.sample)
		}
		c.check(t, wh)
	}
}

// A poll keeps only safe URLs too.
func TestFetchUnsafeURLsDropped(t *testing.T) {
	f := newRouteFake(t)
	bad := commitJSON("aaaaaaa", "2024-03-05T00:00:00Z")
	bad["web_url"] = "javascript:alert(1)"
	good := commitJSON("bbbbbbb", "2024-03-04T00:00:00Z")
	f.add("/projects/7/repository/commits", &route{items: []any{bad, good},
		want: map[string]string{"with_stats": "true"}, allowed: []string{"ref_name"}})
	pages, err := collect(t, f.client(t), change.KindCommit, proj, time.Time{}, FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range pages {
		for _, e := range p.Events {
			got[e.ID] = e.WebURL
		}
	}
	want := map[string]string{"commit-7-aaaaaaa": "", "commit-7-bbbbbbb": "https://gitlab.example.com/group/app/-/commit/bbbbbbb"}
	if !maps.Equal(got, want) {
		t.Errorf("web_url by id %v, want %v", got, want)
	}
}
