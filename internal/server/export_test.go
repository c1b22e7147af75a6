package server_test

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func fetch(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestExportNDJSONLinesAreTheEventsAnswers(t *testing.T) {
	ts, _ := setup(t)
	resp, body := fetch(t, ts.URL+"/api/v1/export?format=ndjson&kind=merge_request&project=acme/web")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if !strings.Contains(resp.Header.Get("Content-Disposition"), "labtrail-events.ndjson") {
		t.Errorf("Content-Disposition %q", resp.Header.Get("Content-Disposition"))
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	n := 0
	for sc.Scan() {
		n++
		var obj struct {
			ID       string `json:"id"`
			Kind     string `json:"kind"`
			Timeline []any  `json:"timeline"`
		}
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil || obj.Kind != "merge_request" || len(obj.Timeline) != 2 {
			t.Fatalf("line %d: %+v, %v", n, obj, err)
		}
		// The same bytes GET /api/v1/events/{id} answers.
		_, one := fetch(t, ts.URL+"/api/v1/events/"+url.PathEscape(obj.ID))
		if one != sc.Text()+"\n" {
			t.Errorf("line %d:\n%s\nGET /api/v1/events/%s:\n%s", n, sc.Text(), obj.ID, one)
		}
	}
	if n != 14 { // merge requests 1..20 of acme/web, less every third
		t.Errorf("%d lines, want 14", n)
	}
	// No format is NDJSON.
	if resp, body := fetch(t, ts.URL+"/api/v1/export"); resp.StatusCode != 200 || strings.Count(body, "\n") != 30 {
		t.Errorf("default export: %d, %d lines", resp.StatusCode, strings.Count(body, "\n"))
	}
}

func TestExportCSV(t *testing.T) {
	ts, _ := setup(t)
	since := url.QueryEscape(base.Add(25 * time.Hour).Format(time.RFC3339))
	resp, body := fetch(t, ts.URL+"/api/v1/export?format=csv&since="+since)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 7 || rows[0][0] != "id" || rows[0][14] != "attributes" {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	var attrs map[string]any
	if err := json.Unmarshal([]byte(rows[1][14]), &attrs); err != nil || attrs["iid"] == nil {
		t.Errorf("attributes %q: %v", rows[1][14], err)
	}
}

func TestExportBadParameters(t *testing.T) {
	ts, _ := setup(t)
	for q, want := range map[string]int{
		"format=xml":      400,
		"format=":         200,
		"kind=wiki":       400,
		"since=yesterday": 400,
		"limit=10":        400,
		"cursor=abc":      400,
		"project=nope/no": 404,
	} {
		resp, body := fetch(t, ts.URL+"/api/v1/export?"+q)
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d: %s", q, resp.StatusCode, want, body)
		}
		if want >= 400 && !strings.Contains(body, `"error"`) {
			t.Errorf("%s: no error message: %s", q, body)
		}
	}
}

func TestExportHEADReadsNothing(t *testing.T) {
	ts, _ := setup(t)
	resp, err := http.Head(ts.URL + "/api/v1/export?format=csv")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Errorf("HEAD: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, err := http.Head(ts.URL + "/api/v1/export?format=xml"); err != nil || resp.StatusCode != 400 {
		t.Errorf("HEAD with a bad format: %v, %v", resp.StatusCode, err)
	}
}
