package server

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

var (
	indexTmpl = template.Must(template.ParseFS(templateFS, "templates/index.html"))
	errorTmpl = pageTemplate("error")
)

// pageError answers an error in JSON, the API's form, except to a browser
// asking for a page outside /api/, which gets it as a page.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if strings.HasPrefix(r.URL.Path, "/api/") || !strings.Contains(r.Header.Get("Accept"), "text/html") {
		writeError(w, status, msg)
		return
	}
	s.errorPage(w, status, msg)
}

// errorPage answers an error as a page, on the layout like every page.
func (s *Server) errorPage(w http.ResponseWriter, status int, msg string) {
	var buf bytes.Buffer
	p := page{Title: fmt.Sprintf("%d %s", status, http.StatusText(status)), Static: staticVersion, Nav: navPages,
		Data: map[string]any{"Status": status, "Text": http.StatusText(status), "Message": msg}}
	if err := errorTmpl.ExecuteTemplate(&buf, "layout", p); err != nil {
		s.log.Error("render error page", "err", err)
	}
	pageSecurity(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// index shows the most recent changes, so the demo's URL opens on something
// a person can read; everything on it also comes from the JSON API.
func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	f := store.Filter{Limit: 100}
	if v := r.URL.Query().Get("kind"); v != "" {
		k, err := change.ParseKind(v)
		if err != nil {
			s.pageError(w, r, http.StatusBadRequest, err.Error())
			return
		}
		f.Kind = k
	}
	page, err := s.store.List(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for i := range page.Events {
		page.Events[i].SafeURLs("")
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
