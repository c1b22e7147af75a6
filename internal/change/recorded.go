package change

// Recorded is an event with its whole timeline (oldest first): what the API
// hands out for one event (GET /api/v1/events/{id}) and what each line of
// an NDJSON export holds, so one encoding serves both and an export reads
// back as the API wrote it.
type Recorded struct {
	Event
	Timeline []TimelineEntry `json:"timeline"`
}

// NewRecorded makes e and its timeline fit to hand out: URLs that are not
// http(s) are dropped (SafeURLs), and a missing timeline is an empty one,
// not null.
func NewRecorded(e Event, timeline []TimelineEntry) Recorded {
	if timeline == nil {
		timeline = []TimelineEntry{}
	}
	e.SafeURLs("")
	return Recorded{Event: e, Timeline: timeline}
}
