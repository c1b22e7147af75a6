package store

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cursors are opaque to clients; every backend issues and reads the same
// ones, so a cursor names a position in the listing's order, not in a
// backend's encoding of it.

// EventCursor is List's cursor for the page after the event (occurred, id):
// "2:<unix seconds>.<nanoseconds>:<id>", or "2:z:<id>" for the zero time,
// base64url. Nanoseconds and any year, so no backend's position is rounded.
func EventCursor(occurred time.Time, id string) string {
	pos := "z"
	if !occurred.IsZero() {
		pos = fmt.Sprintf("%d.%09d", occurred.Unix(), occurred.Nanosecond())
	}
	return base64.RawURLEncoding.EncodeToString([]byte("2:" + pos + ":" + id))
}

// ParseEventCursor reads an EventCursor, or a version 1 cursor of either
// backend (issued before the backends shared one), into the position it
// names; the zero time for the zero time. Its error wraps ErrInvalidCursor.
func ParseEventCursor(c string) (time.Time, string, error) {
	bad := fmt.Errorf("%w %q", ErrInvalidCursor, c)
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", bad
	}
	parts := strings.SplitN(string(b), ":", 3)
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return time.Time{}, "", bad
	}
	var (
		pos = parts[1]
		at  time.Time
		ok  bool
	)
	switch parts[0] {
	case "2":
		at, ok = parseSecNanos(pos)
	case "1":
		at, ok = parseV1(pos)
	}
	if !ok {
		return time.Time{}, "", bad
	}
	return at, parts[2], nil
}

func parseSecNanos(pos string) (time.Time, bool) {
	if pos == "z" {
		return time.Time{}, true
	}
	sec, frac, found := strings.Cut(pos, ".")
	if !found || len(frac) != 9 {
		return time.Time{}, false
	}
	s, err1 := strconv.ParseInt(sec, 10, 64)
	n, err2 := strconv.ParseUint(frac, 10, 32)
	if err1 != nil || err2 != nil {
		return time.Time{}, false
	}
	return time.Unix(s, int64(n)).UTC(), true
}

// parseV1 reads the position of a version 1 cursor: PostgreSQL wrote "z0"
// for the zero time and "0<microseconds>" otherwise, SQLite the plain
// nanoseconds (0 for the zero time), which never start with a 0 but alone.
func parseV1(pos string) (time.Time, bool) {
	switch {
	case pos == "z0":
		return time.Time{}, true
	case len(pos) > 1 && pos[0] == '0':
		us, err := strconv.ParseInt(pos[1:], 10, 64)
		return time.UnixMicro(us).UTC(), err == nil
	}
	ns, err := strconv.ParseInt(pos, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	if ns == 0 {
		return time.Time{}, true
	}
	return time.Unix(0, ns).UTC(), true
}

// IDCursor is the cursor of the audit and delivery listings, which page
// by id, newest first: the last id handed out.
func IDCursor(id int64) string { return strconv.FormatInt(id, 10) }

// ParseIDCursor reads an IDCursor. Its error wraps ErrInvalidCursor.
func ParseIDCursor(c string) (int64, error) {
	id, err := strconv.ParseInt(c, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w %q", ErrInvalidCursor, c)
	}
	return id, nil
}
