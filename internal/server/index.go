package server

import (
	"bytes"
	"embed"
	"fmt"
	"net/http"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

var errorTmpl = pageTemplate("error")

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
