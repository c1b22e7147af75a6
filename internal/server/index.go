package server

import (
	"embed"
	"html/template"
	"net/http"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

var indexTmpl = template.Must(template.ParseFS(templateFS, "templates/index.html"))

// index shows the most recent changes, so the demo's URL opens on something
// a person can read; everything on it also comes from the JSON API.
func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	f := store.Filter{Limit: 100}
	if v := r.URL.Query().Get("kind"); v != "" {
		k, err := change.ParseKind(v)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.Kind = k
	}
	page, err := s.store.List(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	total, err := s.store.Count(r.Context(), "")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ps, err := s.store.Projects(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	err = indexTmpl.Execute(w, map[string]any{
		"Events": page.Events, "Total": total, "Projects": ps, "Kinds": change.Kinds, "Kind": f.Kind,
	})
	if err != nil {
		s.log.Error("render index", "err", err)
	}
}
