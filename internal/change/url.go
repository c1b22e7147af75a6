package change

import (
	"net/url"
	"strings"
)

// SafeURL is raw if it is an absolute http or https URL; a path from the
// root of GitLab ("/group/project/-/jobs/1", as GraphQL's webPath gives)
// joined to base, GitLab's own URL (with its relative root, if any), when
// base is one; and "" otherwise: javascript:, data:, protocol-relative
// ("//host/..."), relative paths and anything unparsable never reach a
// page or a client that would follow them.
func SafeURL(raw, base string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	switch {
	case webURL(u):
		return raw
	case u.Scheme == "" && u.Host == "" && u.Opaque == "" && u.User == nil &&
		strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, "//") && !strings.HasPrefix(raw, "/\\"):
		b, err := url.Parse(strings.TrimSpace(base))
		if err != nil || !webURL(b) || b.RawQuery != "" || b.Fragment != "" {
			return ""
		}
		return strings.TrimRight(b.String(), "/") + raw
	}
	return ""
}

// webURL reports whether u is an absolute http(s) URL with a host.
func webURL(u *url.URL) bool {
	s := strings.ToLower(u.Scheme)
	return (s == "http" || s == "https") && u.Host != "" && u.Opaque == "" && !strings.ContainsAny(u.Host, "\\ ")
}

// urlKeys are the attribute keys that hold URLs, at any depth (a failed
// job's web_url, a release link's url, an environment's external_url).
var urlKeys = map[string]bool{"web_url": true, "url": true, "external_url": true, "direct_asset_url": true}

// SafeURLs applies SafeURL with base to e's web_url and to every URL in
// its attributes (urlKeys, in nested objects and lists too), in place.
func (e *Event) SafeURLs(base string) {
	e.WebURL = SafeURL(e.WebURL, base)
	safeAttrURLs(e.Attrs, base)
}

func safeAttrURLs(v any, base string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && urlKeys[k] {
				v[k] = SafeURL(s, base)
				continue
			}
			safeAttrURLs(x, base)
		}
	case []map[string]any:
		for _, x := range v {
			safeAttrURLs(x, base)
		}
	case []any:
		for _, x := range v {
			safeAttrURLs(x, base)
		}
	}
}
