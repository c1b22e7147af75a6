package server

// NavPaths are the paths of the main navigation, for the tests outside the
// package (the browser test visits each).
func NavPaths() []string {
	out := make([]string, len(navPages))
	for i, n := range navPages {
		out[i] = n.Path
	}
	return out
}
