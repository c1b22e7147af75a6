package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/labtrail/labtrail/internal/export"
)

// exportEvents streams every event the query selects, with its timeline,
// as NDJSON (the default) or CSV: GET /api/v1/export takes the filters of
// GET /api/v1/events but no limit or cursor, and holds one page in memory
// whatever it sends.
func (s *Server) exportEvents(w http.ResponseWriter, r *http.Request) {
	src, ok := s.exportSource()
	if !ok {
		writeError(w, http.StatusNotImplemented, "this server's store cannot export")
		return
	}
	q := r.URL.Query()
	format := export.NDJSON
	if v := values(q, "format"); len(v) > 0 {
		f, err := export.ParseFormat(v[0])
		if err != nil {
			s.fail(w, r, badRequest("%s", err))
			return
		}
		format = f
	}
	for _, k := range []string{"limit", "cursor"} {
		if q.Has(k) {
			s.fail(w, r, badRequest("an export takes no %s: it holds every event the filters select", k))
			return
		}
	}
	f, err := s.parseFilter(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ext := ".ndjson"
	if format == export.CSV {
		ext = ".csv"
	}
	rc := http.NewResponseController(w)
	started := false
	// The answer begins with the first page read, so a store that fails
	// at once still gets its error status.
	begin := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", format.ContentType())
			w.Header().Set("Content-Disposition", `attachment; filename="labtrail-events`+ext+`"`)
			w.WriteHeader(http.StatusOK)
		}
		// The write timeout bounds each page, not the whole export: a
		// client that stops reading is still cut off.
		if s.write > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(s.write))
		}
	}
	if r.Method == http.MethodHead {
		// The headers say what a GET would send; reading every event to
		// send none of them would be all cost.
		begin()
		return
	}
	out := writerFunc(func(b []byte) (int, error) {
		if !started {
			begin()
		}
		return w.Write(b)
	})
	_, err = export.Write(r.Context(), out, src, format, f, func(int64) {
		begin()
		_ = rc.Flush()
	})
	if err != nil && !started {
		s.fail(w, r, err)
		return
	}
	if err != nil && !errors.Is(err, r.Context().Err()) {
		s.log.Error("export failed after its answer began", "err", err)
		// Cut the connection: a clean end would pass for a whole export.
		panic(http.ErrAbortHandler)
	}
}

// writerFunc is an io.Writer of a function.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
