package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// Importer is what an import writes to: histories, under the store's
// ordering rule (an older version never overwrites a newer one).
type Importer interface {
	ImportEvents(ctx context.Context, hs ...store.History) (store.ImportResult, error)
}

// ImportResult counts what an import read and changed.
type ImportResult struct {
	Lines int64 // events read
	store.ImportResult
}

// Add sums two results.
func (r ImportResult) Add(o ImportResult) ImportResult {
	return ImportResult{r.Lines + o.Lines, store.ImportResult{Events: r.Events + o.Events, Timeline: r.Timeline + o.Timeline}}
}

// maxLine bounds one NDJSON line: an event with large attributes fits many
// times over; a file that is not NDJSON fails instead of filling memory.
const maxLine = 64 << 20

// importBatch is how many events one ImportEvents call stores.
const importBatch = 500

// ErrBadLine wraps what makes a line of an import unreadable.
var ErrBadLine = errors.New("bad NDJSON line")

// Read imports the NDJSON export r holds into dst, a batch at a time, and
// says what it read and changed. A line that is not an event stops it
// with an error naming the line; the batches before it stay stored.
// progress, when not nil, is called after each batch.
func Read(ctx context.Context, r io.Reader, dst Importer, progress func(ImportResult)) (ImportResult, error) {
	var (
		res   ImportResult
		batch []store.History
		line  int64
	)
	store1 := func() error {
		if len(batch) == 0 {
			return nil
		}
		ir, err := dst.ImportEvents(ctx, batch...)
		if err != nil {
			return fmt.Errorf("import before line %d: %w", line+1, err)
		}
		res.Events += ir.Events
		res.Timeline += ir.Timeline
		batch = batch[:0]
		if progress != nil {
			progress(res)
		}
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		h, err := ParseLine(b)
		if err != nil {
			return res, fmt.Errorf("line %d: %w", line, err)
		}
		batch = append(batch, h)
		res.Lines++
		if len(batch) == importBatch {
			if err := store1(); err != nil {
				return res, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("line %d: %w: %w", line+1, ErrBadLine, err)
	}
	return res, store1()
}

// ParseLine reads one NDJSON export line (change.Recorded): numbers in
// attributes stay exact (json.Number), timeline entries belong to the
// line's event.
func ParseLine(b []byte) (store.History, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var r change.Recorded
	if err := dec.Decode(&r); err != nil {
		return store.History{}, fmt.Errorf("%w: %w", ErrBadLine, err)
	}
	if dec.More() {
		return store.History{}, fmt.Errorf("%w: more than one value", ErrBadLine)
	}
	if err := r.Event.Validate(); err != nil {
		return store.History{}, fmt.Errorf("%w: %w", ErrBadLine, err)
	}
	for i, t := range r.Timeline {
		switch {
		case t.EventID == "":
			r.Timeline[i].EventID = r.ID
		case t.EventID != r.ID:
			return store.History{}, fmt.Errorf("%w: event %s: a timeline entry of %s", ErrBadLine, r.ID, t.EventID)
		}
	}
	return store.History{Event: r.Event, Timeline: r.Timeline}, nil
}
