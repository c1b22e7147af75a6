package change

import (
	"reflect"
	"testing"
)

func TestSafeURL(t *testing.T) {
	const base = "https://gitlab.example.com/gl"
	for _, c := range []struct{ raw, base, want string }{
		{"https://gitlab.example.com/g/p/-/merge_requests/1", "", "https://gitlab.example.com/g/p/-/merge_requests/1"},
		{"http://gitlab.local:8080/g/p", "", "http://gitlab.local:8080/g/p"},
		{"  HTTPS://gitlab.example.com/g/p  ", "", "HTTPS://gitlab.example.com/g/p"},
		{"/g/p/-/jobs/7", base, "https://gitlab.example.com/gl/g/p/-/jobs/7"},
		{"/g/p/-/jobs/7", base + "/", "https://gitlab.example.com/gl/g/p/-/jobs/7"},
		{"/g/p/-/jobs/7", "", ""},
		{"/g/p/-/jobs/7", "javascript:alert(1)", ""},
		{"javascript:alert(1)", base, ""},
		{"JavaScript:alert(1)", base, ""},
		{" javascript:alert(1)", base, ""},
		{"data:text/html,<script>alert(1)</script>", base, ""},
		{"vbscript:msgbox(1)", base, ""},
		{"//evil.example/x", base, ""},
		{"/\\evil.example/x", base, ""},
		{"https:evil", base, ""},
		{"https:///nohost", base, ""},
		{"ftp://files.example/x", base, ""},
		{"g/p/-/jobs/7", base, ""},
		{"https://gitlab.example.com/\x00", base, ""},
		{"", base, ""},
	} {
		if got := SafeURL(c.raw, c.base); got != c.want {
			t.Errorf("SafeURL(%q, %q) = %q, want %q", c.raw, c.base, got, c.want)
		}
	}
}

func TestEventSafeURLs(t *testing.T) {
	e := Event{WebURL: "javascript:alert(1)", Attrs: map[string]any{
		"links":        []map[string]any{{"name": "bin", "url": "javascript:x()"}, {"name": "ok", "url": "https://h/x"}},
		"failed_jobs":  []any{map[string]any{"name": "t", "web_url": "/g/p/-/jobs/1"}},
		"deployable":   map[string]any{"web_url": "data:x"},
		"external_url": "https://app.example",
		"description":  "javascript:alert(1)", // not a URL attribute: text is left alone
		"iid":          3,
	}}
	e.SafeURLs("https://h")
	want := Event{WebURL: "", Attrs: map[string]any{
		"links":        []map[string]any{{"name": "bin", "url": ""}, {"name": "ok", "url": "https://h/x"}},
		"failed_jobs":  []any{map[string]any{"name": "t", "web_url": "https://h/g/p/-/jobs/1"}},
		"deployable":   map[string]any{"web_url": ""},
		"external_url": "https://app.example",
		"description":  "javascript:alert(1)",
		"iid":          3,
	}}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("got  %+v\nwant %+v", e, want)
	}
}
