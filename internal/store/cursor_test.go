package store

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

func TestEventCursorRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name string
		at   time.Time
		id   string
	}{
		{"zero time", time.Time{}, "mr-1-1"},
		{"the Unix epoch is not the zero time", time.Unix(0, 0).UTC(), "mr-1-1"},
		{"nanoseconds", time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC), "pipeline-7-9"},
		{"before 1970", time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC), "a"},
		{"past SQLite's range", time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC), "a"},
		{"year 1", time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC), "a"},
		{"id with colons", time.Unix(1700000000, 5).UTC(), "image-7-1-v1-sha256:abcd"},
		{"another zone", time.Date(2025, 1, 1, 12, 0, 0, 0, time.FixedZone("Z", 3600)), "x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			at, id, err := ParseEventCursor(EventCursor(c.at, c.id))
			if err != nil {
				t.Fatal(err)
			}
			if !at.Equal(c.at) || at.IsZero() != c.at.IsZero() || id != c.id || at.Location() != time.UTC {
				t.Errorf("got (%v, %q), want (%v, %q)", at, id, c.at, c.id)
			}
		})
	}
}

func TestParseEventCursor(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, c := range []struct {
		name   string
		cursor string
		at     time.Time
		id     string
		bad    bool
	}{
		// Version 1, as each backend issued it before they shared one.
		{"v1 sqlite", enc("1:1741944413589793238:mr-1-1"), time.Unix(0, 1741944413589793238).UTC(), "mr-1-1", false},
		{"v1 sqlite zero", enc("1:0:mr-1-1"), time.Time{}, "mr-1-1", false},
		{"v1 sqlite before 1970", enc("1:-5:x"), time.Unix(0, -5).UTC(), "x", false},
		{"v1 postgres", enc("1:01741944413589793:mr-1-1"), time.UnixMicro(1741944413589793).UTC(), "mr-1-1", false},
		{"v1 postgres zero", enc("1:z0:mr-1-1"), time.Time{}, "mr-1-1", false},
		{"v1 postgres epoch", enc("1:00:mr-1-1"), time.Unix(0, 0).UTC(), "mr-1-1", false},
		{"not base64", "!!", time.Time{}, "", true},
		{"empty", "", time.Time{}, "", true},
		{"unknown version", enc("3:z:x"), time.Time{}, "", true},
		{"no id", enc("2:z:"), time.Time{}, "", true},
		{"two parts", enc("2:z"), time.Time{}, "", true},
		{"short nanoseconds", enc("2:5.1:x"), time.Time{}, "", true},
		{"no fraction", enc("2:5:x"), time.Time{}, "", true},
		{"letters", enc("2:a.000000000:x"), time.Time{}, "", true},
		{"v1 letters", enc("1:abc:x"), time.Time{}, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			at, id, err := ParseEventCursor(c.cursor)
			if c.bad {
				if !errors.Is(err, ErrInvalidCursor) {
					t.Errorf("err %v, want ErrInvalidCursor", err)
				}
				return
			}
			if err != nil || !at.Equal(c.at) || at.IsZero() != c.at.IsZero() || id != c.id {
				t.Errorf("got (%v, %q, %v), want (%v, %q)", at, id, err, c.at, c.id)
			}
		})
	}
}

func TestIDCursor(t *testing.T) {
	if id, err := ParseIDCursor(IDCursor(42)); err != nil || id != 42 {
		t.Errorf("round trip: %d, %v", id, err)
	}
	for _, bad := range []string{"", "0", "-1", "x", "1.5", "99999999999999999999"} {
		if _, err := ParseIDCursor(bad); !errors.Is(err, ErrInvalidCursor) {
			t.Errorf("ParseIDCursor(%q): %v, want ErrInvalidCursor", bad, err)
		}
	}
}
