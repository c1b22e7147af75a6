package export_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/export"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/storetest"
)

// each runs fn against every backend that can run here.
func each(t *testing.T, fn func(t *testing.T, open func(testing.TB) store.Store)) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b.Open) })
	}
}

// seed stores n realistic events plus a few whose text tests the encodings:
// quotes, commas, newlines, non-ASCII, a number float64 cannot hold.
func seed(t testing.TB, s store.Store, n int) []change.Event {
	t.Helper()
	var es []change.Event
	for i := range n {
		es = append(es, storetest.Realistic(i))
	}
	odd := storetest.Realistic(n)
	odd.Title = "Fix \"quoted\", commas,\nnewlines\r\nand ünïcödé — ✓"
	odd.Attrs["big"] = json.Number("9007199254740993")
	odd.Attrs["html"] = "<b>&</b>"
	es = append(es, odd)
	for i := 0; i < len(es); i += 500 {
		if _, err := s.Upsert(context.Background(), es[i:min(i+500, len(es))]...); err != nil {
			t.Fatal(err)
		}
	}
	return es
}

func TestNDJSONIsTheAPIsEventJSON(t *testing.T) {
	each(t, func(t *testing.T, open func(testing.TB) store.Store) {
		s := open(t)
		es := seed(t, s, 1200) // more than one page
		var buf bytes.Buffer
		var pages []int64
		n, err := export.Write(t.Context(), &buf, s, export.NDJSON, store.Filter{}, func(n int64) { pages = append(pages, n) })
		if err != nil || n != int64(len(es)) {
			t.Fatalf("wrote %d of %d: %v", n, len(es), err)
		}
		if len(pages) != 2 || pages[1] != n {
			t.Errorf("progress %v", pages)
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != len(es) {
			t.Fatalf("%d lines for %d events", len(lines), len(es))
		}
		seen := map[string]bool{}
		for i, line := range lines {
			// A standard parser reads each line as an object.
			var obj map[string]any
			if err := json.Unmarshal([]byte(line), &obj); err != nil {
				t.Fatalf("line %d: %v", i+1, err)
			}
			id, _ := obj["id"].(string)
			if seen[id] {
				t.Fatalf("line %d: %s twice", i+1, id)
			}
			seen[id] = true
			if _, ok := obj["timeline"].([]any); !ok {
				t.Fatalf("line %d: no timeline array: %v", i+1, obj["timeline"])
			}
			// Byte for byte what GET /api/v1/events/{id} writes.
			if i%97 == 0 || strings.Contains(line, "quoted") {
				e, tl, err := s.Get(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				var want bytes.Buffer
				if err := json.NewEncoder(&want).Encode(change.NewRecorded(e, tl)); err != nil {
					t.Fatal(err)
				}
				if got := line + "\n"; !jsonEqual(t, got, want.String()) {
					t.Errorf("line %d:\n got %s\nwant %s", i+1, got, want.String())
				}
			}
		}
		if !strings.Contains(buf.String(), `"big":9007199254740993`) {
			t.Error("the large number lost precision")
		}
	})
}

// jsonEqual compares two JSON documents as values, numbers as float64:
// the API's JSON holds attribute numbers as float64, the export exactly
// as stored (checked apart).
func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	dec := func(s string) any {
		d := json.NewDecoder(strings.NewReader(s))
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	return fmt.Sprint(dec(a)) == fmt.Sprint(dec(b))
}

func TestCSVParsesBack(t *testing.T) {
	each(t, func(t *testing.T, open func(testing.TB) store.Store) {
		s := open(t)
		es := seed(t, s, 30)
		var buf bytes.Buffer
		n, err := export.Write(t.Context(), &buf, s, export.CSV, store.Filter{}, nil)
		if err != nil || n != int64(len(es)) {
			t.Fatalf("wrote %d of %d: %v", n, len(es), err)
		}
		r := csv.NewReader(&buf)
		rows, err := r.ReadAll() // RFC 4180, as encoding/csv reads it
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(rows[0]) != fmt.Sprint(export.Columns) {
			t.Fatalf("header %v", rows[0])
		}
		if len(rows) != len(es)+1 {
			t.Fatalf("%d rows for %d events", len(rows)-1, len(es))
		}
		byID := map[string]change.Event{}
		for _, e := range es {
			byID[e.ID] = e
		}
		col := map[string]int{}
		for i, c := range rows[0] {
			col[c] = i
		}
		for _, row := range rows[1:] {
			e, ok := byID[row[col["id"]]]
			if !ok {
				t.Fatalf("unknown id %q", row[col["id"]])
			}
			// encoding/csv reads a quoted CRLF back as LF.
			if row[col["title"]] != strings.ReplaceAll(e.Title, "\r\n", "\n") || row[col["kind"]] != string(e.Kind) || row[col["project_id"]] != fmt.Sprint(e.ProjectID) {
				t.Errorf("%s: row %q", e.ID, row)
			}
			at, err := time.Parse(time.RFC3339Nano, row[col["occurred_at"]])
			if err != nil || !at.Equal(e.OccurredAt) {
				t.Errorf("%s: occurred_at %q, want %v", e.ID, row[col["occurred_at"]], e.OccurredAt)
			}
			var attrs map[string]any
			if err := json.Unmarshal([]byte(row[col["attributes"]]), &attrs); err != nil || attrs["target_branch"] != "main" {
				t.Errorf("%s: attributes %q: %v", e.ID, row[col["attributes"]], err)
			}
			var tl []change.TimelineEntry
			if err := json.Unmarshal([]byte(row[col["timeline"]]), &tl); err != nil || len(tl) != 3 {
				t.Errorf("%s: timeline %q: %v", e.ID, row[col["timeline"]], err)
			}
		}
		// Nothing selected: the header alone.
		buf.Reset()
		if n, err := export.Write(t.Context(), &buf, s, export.CSV, store.Filter{Kind: change.KindIssue}, nil); err != nil || n != 0 {
			t.Fatalf("empty export: %d, %v", n, err)
		}
		if got := buf.String(); got != strings.Join(export.Columns, ",")+"\r\n" {
			t.Errorf("empty export %q", got)
		}
	})
}

func TestExportFilters(t *testing.T) {
	s := storetest.Backends()[0].Open(t)
	es := seed(t, s, 200)
	count := func(f store.Filter) int64 {
		n, err := export.Write(t.Context(), io.Discard, s, export.NDJSON, f, nil)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	want := func(keep func(change.Event) bool) (n int64) {
		for _, e := range es {
			if keep(e) {
				n++
			}
		}
		return n
	}
	since, until := es[50].OccurredAt, es[120].OccurredAt
	for _, c := range []struct {
		name string
		f    store.Filter
		keep func(change.Event) bool
	}{
		{"kind", store.Filter{Kinds: []change.Kind{change.KindPipeline}}, func(e change.Event) bool { return e.Kind == change.KindPipeline }},
		{"projects", store.Filter{ProjectIDs: []int64{3, 4}}, func(e change.Event) bool { return e.ProjectID == 3 || e.ProjectID == 4 }},
		{"window", store.Filter{Since: since, Until: until}, func(e change.Event) bool {
			return !e.OccurredAt.Before(since) && e.OccurredAt.Before(until)
		}},
	} {
		if got, w := count(c.f), want(c.keep); got != w || w == 0 {
			t.Errorf("%s: exported %d, want %d", c.name, got, w)
		}
	}
	if _, err := export.Write(t.Context(), io.Discard, s, "xml", store.Filter{}, nil); err == nil {
		t.Error("an unknown format was accepted")
	}
}

func TestRoundTripEqualsSource(t *testing.T) {
	each(t, func(t *testing.T, open func(testing.TB) store.Store) {
		src, dst := open(t), open(t)
		seed(t, src, 1100)
		// Timelines that are more than the transitions of one upsert.
		later := storetest.Realistic(4)
		later.UpdatedAt, later.State = later.UpdatedAt.Add(time.Hour), "closed"
		later.Transitions = []change.Transition{{State: "closed", At: later.UpdatedAt}}
		if _, err := src.Upsert(t.Context(), later); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := export.Write(t.Context(), &buf, src, export.NDJSON, store.Filter{}, nil); err != nil {
			t.Fatal(err)
		}
		file := buf.Bytes()
		res, err := export.Read(t.Context(), bytes.NewReader(file), dst, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Lines != 1101 || res.Events != 1101 {
			t.Errorf("import: %+v", res)
		}
		want, err := store.Checksums(t.Context(), src, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := store.Checksums(t.Context(), dst, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if want[i].Table != "events" && want[i].Table != "timeline" {
				continue
			}
			if want[i] != got[i] {
				t.Errorf("%s: source %+v, imported %+v", want[i].Table, want[i], got[i])
			}
		}
		// Again: nothing changes.
		res, err = export.Read(t.Context(), bytes.NewReader(file), dst, nil)
		if err != nil || res.Events != 0 || res.Timeline != 0 {
			t.Errorf("second import: %+v, %v", res, err)
		}
		// An older version never overwrites a newer one.
		newer := storetest.Realistic(6)
		newer.UpdatedAt, newer.Title = newer.UpdatedAt.Add(time.Hour), "newer"
		if _, err := dst.Upsert(t.Context(), newer); err != nil {
			t.Fatal(err)
		}
		if _, err := export.Read(t.Context(), bytes.NewReader(file), dst, nil); err != nil {
			t.Fatal(err)
		}
		if e, _, _ := dst.Get(t.Context(), newer.ID); e.Title != "newer" {
			t.Errorf("an import overwrote a newer version: title %q", e.Title)
		}
	})
}

func TestImportRejectsBadLines(t *testing.T) {
	s := storetest.Backends()[0].Open(t)
	good, _ := json.Marshal(change.NewRecorded(storetest.Realistic(1), nil))
	for _, c := range []struct{ name, in string }{
		{"not JSON", "{nope\n"},
		{"no id", `{"kind":"pipeline","updated_at":"2025-01-01T00:00:00Z"}` + "\n"},
		{"unknown kind", `{"id":"x","kind":"wiki","updated_at":"2025-01-01T00:00:00Z"}` + "\n"},
		{"two values", string(good) + " {}\n"},
		{"foreign timeline", `{"id":"pipeline-1-1","kind":"pipeline","updated_at":"2025-01-01T00:00:00Z","timeline":[{"event_id":"pipeline-1-2","state":"x","at":"2025-01-01T00:00:00Z"}]}` + "\n"},
	} {
		in := string(good) + "\n\n" + c.in
		res, err := export.Read(t.Context(), strings.NewReader(in), s, nil)
		if !errors.Is(err, export.ErrBadLine) || !strings.Contains(err.Error(), "line 3") {
			t.Errorf("%s: %v", c.name, err)
		}
		if res.Lines != 1 {
			t.Errorf("%s: read %d good lines, want 1", c.name, res.Lines)
		}
	}
	if n, _ := s.Count(t.Context(), ""); n != 0 {
		// The good line comes before a bad one in one batch: nothing of a
		// file that fails before its first batch is stored.
		t.Errorf("%d events stored from files that fail", n)
	}
}
