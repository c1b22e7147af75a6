// Package labtrail_test holds checks on the repository itself, not on code.
package labtrail_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maxTrackedSize is the largest file the repository may hold outside testdata.
const maxTrackedSize = 1 << 20

// TestNoBuildOutputsTracked fails when git tracks a binary (a compiled test,
// the labtrail executable, a database) or a file over 1 MB outside testdata
// (PNG images under docs/, the README's screenshots, are allowed):
// build outputs belong in .gitignore, not in every clone's history.
func TestNoBuildOutputsTracked(t *testing.T) {
	if _, err := os.Stat(".git"); err != nil {
		t.Skip("not a git checkout: nothing is tracked")
	}
	out, err := exec.Command("git", "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	if len(files) < 10 {
		t.Fatalf("git ls-files listed %d files; expected the whole tree", len(files))
	}
	for _, f := range files {
		if bad := trackedProblem(f); bad != "" {
			t.Errorf("%s is tracked but %s; remove it (git rm --cached) and ignore it", f, bad)
		}
	}
}

// trackedProblem says why a tracked file should not be, or "".
func trackedProblem(path string) string {
	info, err := os.Lstat(path)
	if err != nil || !info.Mode().IsRegular() {
		return "" // deleted in the work tree, or a link
	}
	inTestdata := strings.Contains(filepath.ToSlash(path), "testdata/")
	if info.Size() > maxTrackedSize && !inTestdata {
		return "over 1 MB"
	}
	head := make([]byte, 8000)
	fh, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer fh.Close()
	n, _ := fh.Read(head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")), bytes.HasPrefix(head, []byte("MZ")),
		bytes.HasPrefix(head, []byte("\xcf\xfa\xed\xfe")):
		return "an executable"
	case bytes.HasPrefix(head, []byte("SQLite format 3\x00")):
		return "a SQLite database"
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")) && strings.HasPrefix(filepath.ToSlash(path), "docs/"):
		return "" // the docs' screenshots, images by design
	case bytes.IndexByte(head, 0) >= 0 && !inTestdata:
		return "binary"
	}
	return ""
}
