package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Every error is JSON with the right status, whatever the path or method;
// only a browser asking for a page outside /api/ gets a page.
func TestErrorsAreJSONWithTheirStatus(t *testing.T) {
	ts, _ := setup(t)
	tests := []struct {
		method, path, accept string
		code                 int
		allow, msg           string
		html                 bool
	}{
		{"POST", "/api/v1/events", "", 405, "GET, HEAD", "POST is not allowed", false},
		{"DELETE", "/api/v1/events/mr-10-1", "", 405, "GET, HEAD", "not allowed", false},
		{"GET", "/api/v1/webhooks/gitlab", "", 405, "POST", "use POST", false},
		{"PUT", "/healthz", "", 405, "GET, HEAD", "not allowed", false},
		{"POST", "/", "", 405, "GET, HEAD", "not allowed", false},
		{"GET", "/api/v1/nothing", "", 404, "", "no such endpoint: GET /api/v1/nothing", false},
		{"POST", "/api/v2/events", "", 404, "", "no such endpoint", false},
		{"GET", "/api/v1/nothing", "text/html", 404, "", "no such endpoint", false},
		{"GET", "/favicon.ico", "", 404, "", "no such endpoint", false},
		// The overview is a page: its errors are pages, whoever asks.
		{"GET", "/?kind=bogus", "", 400, "", "unknown parameter &#34;kind&#34;", true},
		{"GET", "/?window=year", "text/html,application/xhtml+xml", 400, "", "window must be", true},
		{"GET", "/nothing", "text/html", 404, "", "no such endpoint", true},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path+" "+tc.accept, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, ts.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.code, body)
			}
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			ct := resp.Header.Get("Content-Type")
			if tc.html {
				if !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(body), tc.msg) {
					t.Errorf("want an HTML page saying %q, got %s: %s", tc.msg, ct, body)
				}
				return
			}
			var m map[string]string
			if !strings.HasPrefix(ct, "application/json") || json.Unmarshal(body, &m) != nil {
				t.Fatalf("want JSON, got %s: %s", ct, body)
			}
			if !strings.Contains(m["error"], tc.msg) {
				t.Errorf("error %q lacks %q", m["error"], tc.msg)
			}
		})
	}
	// HEAD of a GET route is served, not refused.
	resp, err := http.Head(ts.URL + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("HEAD /api/v1/events: %d", resp.StatusCode)
	}
}
