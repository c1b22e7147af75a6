// Package export writes labtrail's history out in formats every tool reads
// (NDJSON, CSV, and day by day to S3-compatible storage), reads NDJSON
// exports back in, and deletes old history by a retention policy (issue
// 16). It reads and writes the store only, page by page: an export of any
// size holds one page in memory.
package export

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// Format is an export's encoding.
type Format string

// The formats.
const (
	// NDJSON: one event per line, as GET /api/v1/events/{id} returns it
	// (change.Recorded: the event and its timeline).
	NDJSON Format = "ndjson"
	// CSV: RFC 4180, a header row, the common fields as columns and the
	// attributes and timeline as JSON columns.
	CSV Format = "csv"
)

// ParseFormat reads a format's name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case NDJSON, CSV:
		return f, nil
	case "":
		return "", fmt.Errorf("no format given: ndjson or csv")
	}
	return "", fmt.Errorf("unknown format %q: ndjson or csv", s)
}

// ContentType is what an HTTP response of the format says it holds.
func (f Format) ContentType() string {
	if f == CSV {
		return "text/csv; charset=utf-8"
	}
	return "application/x-ndjson"
}

// Source is what an export reads: events and their timelines, a page at a
// time.
type Source interface {
	ListHistories(ctx context.Context, f store.Filter) (store.HistoryPage, error)
}

// Columns are the CSV header, in order.
var Columns = []string{"id", "kind", "project_id", "project_path", "title", "state", "author", "web_url",
	"ref", "sha", "created_at", "updated_at", "occurred_at", "source", "attributes", "timeline"}

// Write writes every event f selects (f's Limit and Cursor are its own to
// set) to w in format, newest occurred_at first, and returns how many it
// wrote. progress, when not nil, is called after each page with the count
// so far.
func Write(ctx context.Context, w io.Writer, src Source, format Format, f store.Filter, progress func(n int64)) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10) // a write per page, not per event
	enc, flushEnc, err := encoder(bw, format)
	if err != nil {
		return 0, err
	}
	flush := func() error {
		if err := flushEnc(); err != nil {
			return err
		}
		return bw.Flush()
	}
	f.Limit, f.Cursor = store.MaxLimit, ""
	var n int64
	for {
		page, err := src.ListHistories(ctx, f)
		if err != nil {
			return n, err
		}
		for _, h := range page.Histories {
			if err := enc(change.NewRecorded(h.Event, h.Timeline)); err != nil {
				return n, err
			}
			n++
		}
		if err := flush(); err != nil {
			return n, err
		}
		if progress != nil {
			progress(n)
		}
		if page.NextCursor == "" {
			return n, nil
		}
		f.Cursor = page.NextCursor
	}
}

// encoder returns the function that writes one event in format, and the
// one that flushes what it buffered.
func encoder(w io.Writer, format Format) (func(change.Recorded) error, func() error, error) {
	switch format {
	case NDJSON:
		enc := json.NewEncoder(w) // a line per value
		return func(r change.Recorded) error { return enc.Encode(r) }, func() error { return nil }, nil
	case CSV:
		cw := csv.NewWriter(w)
		cw.UseCRLF = true // RFC 4180's line break
		header := true
		flush := func() error {
			if header { // an export of nothing still says what it would hold
				header = false
				if err := cw.Write(Columns); err != nil {
					return err
				}
			}
			cw.Flush()
			return cw.Error()
		}
		return func(r change.Recorded) error {
			if header {
				if err := flush(); err != nil {
					return err
				}
			}
			row, err := csvRow(r)
			if err != nil {
				return err
			}
			return cw.Write(row)
		}, flush, nil
	}
	return nil, nil, fmt.Errorf("unknown format %q: ndjson or csv", format)
}

func csvRow(r change.Recorded) ([]string, error) {
	e := r.Event
	attrs := ""
	if len(e.Attrs) > 0 {
		b, err := json.Marshal(e.Attrs)
		if err != nil {
			return nil, fmt.Errorf("event %s: attributes: %w", e.ID, err)
		}
		attrs = string(b)
	}
	tl, err := json.Marshal(r.Timeline)
	if err != nil {
		return nil, fmt.Errorf("event %s: timeline: %w", e.ID, err)
	}
	return []string{e.ID, string(e.Kind), strconv.FormatInt(e.ProjectID, 10), e.ProjectPath, e.Title, e.State,
		e.Author, e.WebURL, e.Ref, e.SHA, csvTime(e.CreatedAt), csvTime(e.UpdatedAt), csvTime(e.OccurredAt),
		string(e.Source), attrs, string(tl)}, nil
}

// csvTime is t as RFC 3339 in UTC, "" for the zero time.
func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
