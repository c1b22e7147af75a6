package store

import "github.com/labtrail/labtrail/internal/change"

// The rules of ExportEvents and the imports, for every backend.

// Histories joins exported events (in id order) with their timeline
// entries (grouped by event id, each event's oldest first).
func Histories(es []change.Event, tl []change.TimelineEntry) []History {
	out := make([]History, len(es))
	index := make(map[string]int, len(es))
	for i, e := range es {
		out[i].Event = e
		index[e.ID] = i
	}
	for _, t := range tl {
		if i, ok := index[t.EventID]; ok {
			out[i].Timeline = append(out[i].Timeline, t)
		}
	}
	return out
}

// ImportRow is an imported event's stored attributes and hash. e's times
// must be as the backend stores them, as for Decide.
func ImportRow(e change.Event) (attrs, hash []byte, err error) {
	if attrs, err = MarshalAttrs(e.Attrs); err != nil {
		return nil, nil, err
	}
	hash, err = Hash(e, attrs)
	return attrs, hash, err
}
