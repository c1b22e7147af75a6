package gitlab

import (
	"encoding/json"
	"testing"
)

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// author is a GitLab username or nothing: a pushed commit's is the
// pusher's when the pusher is its git author (by public email or by name);
// a branch's or tag's is the pusher's; git names stay in the attributes.
func TestPushAuthorIsAUsername(t *testing.T) {
	const sha1, sha2, sha3 = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222", "3333333333333333333333333333333333333333"
	commit := func(sha, name, email string) map[string]any {
		return map[string]any{"id": sha, "message": "m", "timestamp": "2026-01-02T03:04:05Z",
			"url": "https://gl.example/g/p/-/commit/" + sha, "author": map[string]any{"name": name, "email": email}}
	}
	for _, c := range []struct {
		name, userName, userEmail string
		want                      map[string]string // event id -> author
	}{
		{"matched by email", "Kenneth", "KEN@example.com", map[string]string{
			"commit-5-" + sha1: "ken", "commit-5-" + sha2: "", "commit-5-" + sha3: "ken", "branch-5-main": "ken"}},
		{"matched by name, email redacted", "Ken Thompson", "[REDACTED]", map[string]string{
			"commit-5-" + sha1: "ken", "commit-5-" + sha2: "", "commit-5-" + sha3: "", "branch-5-main": "ken"}},
		{"no match", "Someone", "", map[string]string{
			"commit-5-" + sha1: "", "commit-5-" + sha2: "", "commit-5-" + sha3: "", "branch-5-main": "ken"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := mustJSON(t, map[string]any{
				"object_kind": "push", "before": sha1, "after": sha3, "ref": "refs/heads/main", "checkout_sha": sha3,
				"user_username": "ken", "user_name": c.userName, "user_email": c.userEmail, "project_id": 5,
				"project": map[string]any{"id": 5, "path_with_namespace": "g/p", "web_url": "https://gl.example/g/p"},
				"commits": []any{commit(sha1, "Ken Thompson", "ken@example.com"), commit(sha2, "Dennis Ritchie", "dmr@example.com"),
					commit(sha3, "ken", "ken@example.com")},
				"total_commits_count": 3,
			})
			wh, err := ParseWebhook("Push Hook", body)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, e := range wh.Events {
				got[e.ID] = e.Author
			}
			for id, want := range c.want {
				if a, ok := got[id]; !ok || a != want {
					t.Errorf("%s: author %q (present %v), want %q", id, a, ok, want)
				}
			}
			b := whEvent(t, wh, "branch-5-main")
			if b.Attrs["author_name"] != "ken" || b.Attrs["author_email"] != "ken@example.com" {
				t.Errorf("branch attrs %v", b.Attrs)
			}
			cm := whEvent(t, wh, "commit-5-"+sha2)
			if cm.Attrs["author_name"] != "Dennis Ritchie" || cm.Attrs["author_email"] != "dmr@example.com" {
				t.Errorf("commit attrs %v", cm.Attrs)
			}
		})
	}
}

func TestTagPushAuthorIsThePusher(t *testing.T) {
	wh := parseWebhookSample(t, "tag_push.json")
	for _, e := range wh.Events {
		if e.Author != "jsmith" || e.Attrs["author_name"] != "John Smith" {
			t.Errorf("%s: author %q, author_name %v", e.ID, e.Author, e.Attrs["author_name"])
		}
	}
	if len(wh.Events) == 0 {
		t.Fatal("no tag event")
	}
}
