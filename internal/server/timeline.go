package server

import (
	"bytes"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// timelineLimit is how many changes a page of the timeline shows unless
// the URL asks for another number (limit, 1..store.MaxLimit).
const timelineLimit = 50

type timelineData struct {
	Events []change.Event
	// Next is the link to the page after this one, "" on the last.
	Next string
	// First is the link to the first page, "" on the first page.
	First string
	// Paged says this is not the first page.
	Paged bool
	// Filtered says the filter selects less than everything.
	Filtered bool
	// Stored is false when the store holds no event at all. Nothing is
	// counted: counting a million events takes longer than a page may.
	Stored bool
	// Limit is the page size asked for, 0 for the default.
	Limit int
	// Fragment says the answer is the rows and pager alone.
	Fragment bool
}

var timelineTmpl = pageTemplate("timeline")

// timelinePage is GET /timeline: every change, newest first, filtered by
// the URL and paged by the store's keyset cursor, so any page costs what
// the first does. An htmx request (the "Load more" button) gets the rows
// and the new pager only.
func (s *Server) timelinePage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := time.Now().UTC()
	f, err := s.parsePageFilter(ctx, r, filterOptions{window: "all", kinds: true, allowAll: true,
		extraParam: []string{"cursor", "limit"}}, now)
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	q := r.URL.Query()
	if len(values(q, "cursor")) > 1 || len(values(q, "limit")) > 1 {
		s.failPage(w, r, badRequest("cursor and limit may each be given once"))
		return
	}
	sf := store.Filter{ProjectIDs: f.IDs, Since: f.Since, Until: f.Until, Cursor: q.Get("cursor"), Limit: timelineLimit}
	for _, k := range f.Kinds {
		sf.Kinds = append(sf.Kinds, change.Kind(k))
	}
	if f.Author != "" {
		sf.Authors = []string{f.Author}
	}
	if f.State != "" {
		sf.States = []string{f.State}
	}
	d := timelineData{Stored: true}
	if d.Limit, err = limitParam(q.Get("limit")); err != nil {
		s.failPage(w, r, err)
		return
	}
	if d.Limit > 0 {
		sf.Limit = d.Limit
	}
	pg, err := s.store.List(ctx, sf)
	if err != nil {
		if errors.Is(err, store.ErrInvalidCursor) {
			err = badRequest("invalid cursor: follow the page's Older link rather than editing it, or start again at /timeline")
		}
		s.failPage(w, r, err)
		return
	}
	for i := range pg.Events {
		pg.Events[i].SafeURLs("")
	}
	d.Events, d.Paged = pg.Events, sf.Cursor != ""
	d.Filtered = len(f.IDs) > 0 || f.Group != "" || len(f.Kinds) > 0 || f.Author != "" || f.State != "" || f.Window != "all"
	limit := ""
	if d.Limit > 0 {
		limit = strconv.Itoa(d.Limit)
	}
	if pg.NextCursor != "" {
		d.Next = queryLink("/timeline", f, "cursor", pg.NextCursor, "limit", limit)
	}
	if d.Paged {
		d.First = queryLink("/timeline", f, "limit", limit)
	}
	if len(d.Events) == 0 && !d.Paged {
		// Nothing matches: is there anything at all?
		some, err := s.store.List(ctx, store.Filter{Limit: 1})
		if err != nil {
			s.failPage(w, r, err)
			return
		}
		d.Stored = len(some.Events) > 0
	}
	// The same URL answers htmx with part of the page.
	w.Header().Set("Vary", "HX-Request")
	if r.Header.Get("HX-Request") == "true" && d.Paged {
		d.Fragment = true
		s.renderFragment(w, timelineTmpl, "timeline-more", page{F: f, Data: &d, Now: now})
		return
	}
	p, err := s.pageContext(ctx, f)
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	p.Title, p.Data, p.Now = "Timeline", &d, now
	s.render(w, r, "timeline", p)
}

// renderFragment writes the block name of t alone, as htmx swaps it into
// a page already shown. The same URL without htmx is the whole page.
func (s *Server) renderFragment(w http.ResponseWriter, t *template.Template, name string, p page) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, p); err != nil {
		s.log.Error("render fragment", "block", name, "err", err)
		s.errorPage(w, http.StatusInternalServerError, "this part of the page could not be shown; the server log says why")
		return
	}
	writeHTML(w, buf.Bytes())
}
