package export_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/export"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/storetest"
)

// fakeS3 starts an S3-compatible server in the test and returns a client
// of it made as labtrail makes one (endpoint, path style, the default
// credential chain reading the environment), with bucket "archive".
func fakeS3(t *testing.T) *s3.Client {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	c, err := export.NewS3Client(t.Context(), export.S3Config{Endpoint: srv.URL, Region: "eu-west-1", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String("archive")}); err != nil {
		t.Fatal(err)
	}
	return c
}

var day0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// onDay is the i-th realistic event moved to occur on day d (from day0).
func onDay(i, d int) change.Event {
	e := storetest.Realistic(i)
	shift := day0.AddDate(0, 0, d).Add(time.Duration(i%600) * time.Minute).Sub(e.CreatedAt)
	e.CreatedAt, e.UpdatedAt, e.OccurredAt = e.CreatedAt.Add(shift), e.UpdatedAt.Add(shift), e.OccurredAt.Add(shift)
	for j := range e.Transitions {
		e.Transitions[j].At = e.Transitions[j].At.Add(shift)
	}
	return e
}

func get(t *testing.T, c *s3.Client, key string) []byte {
	t.Helper()
	out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("archive"), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func manifest(t *testing.T, c *s3.Client, loc export.Location, day time.Time) export.Manifest {
	t.Helper()
	var m export.Manifest
	if err := json.Unmarshal(get(t, c, loc.ManifestKey(day)), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// lines reads a gzipped NDJSON object's ids.
func lines(t *testing.T, b []byte) map[string]string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if l == "" {
			continue
		}
		var e change.Recorded
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		out[e.ID] = e.Title
	}
	return out
}

func TestS3ExportEachClosedDayOnce(t *testing.T) {
	each(t, func(t *testing.T, open func(testing.TB) store.Store) {
		c := fakeS3(t)
		s := open(t)
		var es []change.Event
		for i := range 300 {
			es = append(es, onDay(i, i%3)) // days 0, 1, 2; both kinds each day
		}
		if _, err := s.Upsert(t.Context(), es...); err != nil {
			t.Fatal(err)
		}
		now := day0.AddDate(0, 0, 2).Add(12 * time.Hour) // day 2 still open
		loc := export.Location{Bucket: "archive", Prefix: "team/labtrail"}
		a := &export.Archiver{Store: s, S3: c, Loc: loc, Now: func() time.Time { return now }}
		res, err := a.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if res.Objects != 4 || res.Manifests != 2 || res.Events != 200 || res.Rewritten != 0 {
			t.Fatalf("first run: %+v; want 2 kinds x 2 closed days, 200 events", res)
		}
		for d := range 2 {
			day := day0.AddDate(0, 0, d)
			m := manifest(t, c, loc, day)
			if m.Date != day.Format(time.DateOnly) || len(m.Objects) != 2 {
				t.Fatalf("manifest of day %d: %+v", d, m)
			}
			for _, o := range m.Objects {
				if want := "team/labtrail/kind=" + string(o.Kind) + "/date=" + m.Date + "/events.ndjson.gz"; o.Key != want {
					t.Errorf("key %s, want %s", o.Key, want)
				}
				b := get(t, c, o.Key)
				sum := sha256.Sum256(b)
				if hex.EncodeToString(sum[:]) != o.SHA256 || int64(len(b)) != o.Bytes {
					t.Errorf("%s: manifest sha256 %s bytes %d, object %x %d", o.Key, o.SHA256, o.Bytes, sum, len(b))
				}
				got := lines(t, b)
				want, err := export.Write(t.Context(), io.Discard, s, export.NDJSON,
					store.Filter{Kind: o.Kind, Since: day, Until: day.AddDate(0, 0, 1)}, nil)
				if err != nil || int64(len(got)) != want || o.Events != want || want == 0 {
					t.Errorf("%s: %d lines, manifest %d, store %d", o.Key, len(got), o.Events, want)
				}
				if o.Rewritten || o.Rewrites != 0 {
					t.Errorf("%s: rewritten on its first write", o.Key)
				}
			}
		}
		// Nothing changed: nothing is written again.
		if res, err := a.Run(t.Context()); err != nil || res.Objects != 0 || res.Manifests != 0 {
			t.Fatalf("second run: %+v, %v", res, err)
		}
		// A late update of day 1 rewrites that day's object of that kind.
		late := es[1]
		late.UpdatedAt, late.Title = late.UpdatedAt.Add(48*time.Hour), "late edit"
		if _, err := s.Upsert(t.Context(), late); err != nil {
			t.Fatal(err)
		}
		res, err = a.Run(t.Context())
		if err != nil || res.Objects != 1 || res.Rewritten != 1 || res.Manifests != 1 {
			t.Fatalf("after a late update: %+v, %v", res, err)
		}
		m := manifest(t, c, loc, day0.AddDate(0, 0, 1))
		for _, o := range m.Objects {
			if rewritten := o.Kind == late.Kind; o.Rewritten != rewritten || (o.Rewrites == 1) != rewritten {
				t.Errorf("%s: rewritten %v (%d), want %v", o.Kind, o.Rewritten, o.Rewrites, rewritten)
			}
			if o.Kind == late.Kind {
				if got := lines(t, get(t, c, o.Key)); got[late.ID] != "late edit" {
					t.Errorf("the rewrite holds %q for %s", got[late.ID], late.ID)
				}
			}
		}

		// The bucket reads back into an empty store: the same events and
		// timelines as the closed days of the source.
		dst := open(t)
		ir, err := export.ImportS3(t.Context(), c, loc, export.DayRange{}, dst, nil)
		if err != nil || ir.Lines != 200 {
			t.Fatalf("import: %+v, %v", ir, err)
		}
		closed := open(t)
		var buf bytes.Buffer
		if _, err := export.Write(t.Context(), &buf, s, export.NDJSON, store.Filter{Until: day0.AddDate(0, 0, 2)}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := export.Read(t.Context(), &buf, closed, nil); err != nil {
			t.Fatal(err)
		}
		sameEvents(t, closed, dst)
		// A day range and a kind.
		one := open(t)
		ir, err = export.ImportS3(t.Context(), c, loc, export.DayRange{From: day0.AddDate(0, 0, 1), To: day0.AddDate(0, 0, 1),
			Kinds: []change.Kind{change.KindPipeline}}, one, nil)
		if n, _ := one.Count(t.Context(), ""); err != nil || ir.Lines != 50 || n != 50 {
			t.Errorf("import of day 1's pipelines: %+v (%d stored), %v", ir, n, err)
		}
	})
}

// sameEvents says whether two stores hold the same events and timelines,
// by the migrate command's checksums.
func sameEvents(t *testing.T, want, got store.Store) {
	t.Helper()
	ws, err := store.Checksums(t.Context(), want, nil)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := store.Checksums(t.Context(), got, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ws {
		if (ws[i].Table == "events" || ws[i].Table == "timeline") && ws[i] != gs[i] {
			t.Errorf("%s: want %+v, got %+v", ws[i].Table, ws[i], gs[i])
		}
	}
}

func TestS3ImportRefusesATamperedObject(t *testing.T) {
	c := fakeS3(t)
	s := storetest.Backends()[0].Open(t)
	if _, err := s.Upsert(t.Context(), onDay(0, 0), onDay(2, 0)); err != nil {
		t.Fatal(err)
	}
	loc := export.Location{Bucket: "archive"}
	a := &export.Archiver{Store: s, S3: c, Loc: loc, Now: func() time.Time { return day0.AddDate(0, 0, 1) }}
	if _, err := a.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	line, _ := json.Marshal(change.NewRecorded(onDay(4, 0), nil))
	gz.Write(append(line, '\n'))
	gz.Close()
	key := loc.ObjectKey(change.KindMergeRequest, day0)
	if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("archive"), Key: aws.String(key), Body: bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatal(err)
	}
	dst := storetest.Backends()[0].Open(t)
	_, err := export.ImportS3(t.Context(), c, loc, export.DayRange{Kinds: []change.Kind{change.KindMergeRequest}}, dst, nil)
	if !errors.Is(err, export.ErrChecksum) {
		t.Fatalf("import of a tampered object: %v", err)
	}
	if n, _ := dst.Count(t.Context(), ""); n != 0 {
		t.Errorf("%d events of a tampered object stored", n)
	}
}

func TestParseS3URL(t *testing.T) {
	for in, want := range map[string]export.Location{
		"s3://bucket":              {Bucket: "bucket"},
		"s3://bucket/":             {Bucket: "bucket"},
		"s3://bucket/a/b/":         {Bucket: "bucket", Prefix: "a/b"},
		" s3://my.bucket/labtrail": {Bucket: "my.bucket", Prefix: "labtrail"},
	} {
		if got, err := export.ParseS3URL(in); err != nil || got != want {
			t.Errorf("%q: %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "bucket/prefix", "https://bucket/x", "s3:///x", "s3://b/x?y=1", "s3://u:p@b/x"} {
		if _, err := export.ParseS3URL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A pruned day whose object was deleted from the bucket (a lifecycle rule)
// is written from the store alone; a day without a manifest imports
// unchecked.
func TestS3MissingObjectAndManifest(t *testing.T) {
	c := fakeS3(t)
	s := storetest.Backends()[0].Open(t)
	if _, err := s.Upsert(t.Context(), onDay(0, 0), onDay(2, 0)); err != nil {
		t.Fatal(err)
	}
	loc := export.Location{Bucket: "archive", Prefix: "x"}
	now := day0.AddDate(0, 0, 5)
	a := &export.Archiver{Store: s, S3: c, Loc: loc, Now: func() time.Time { return now }}
	if _, err := a.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if res, err := export.Prune(t.Context(), s, export.Retention{All: time.Hour}, 0, true, now); err != nil || res.Events[change.KindMergeRequest] != 2 {
		t.Fatalf("prune: %+v, %v", res, err)
	}
	key := loc.ObjectKey(change.KindMergeRequest, day0)
	for _, k := range []string{key, loc.ManifestKey(day0)} {
		if _, err := c.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String("archive"), Key: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Upsert(t.Context(), onDay(4, 0)); err != nil {
		t.Fatal(err)
	}
	if res, err := a.Run(t.Context()); err != nil || res.Objects != 1 {
		t.Fatalf("run: %+v, %v", res, err)
	}
	if got := lines(t, get(t, c, key)); len(got) != 1 {
		t.Errorf("%d events in the rewritten object, want the one stored", len(got))
	}
	// The manifest was written again; delete it to import without one.
	if _, err := c.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String("archive"), Key: aws.String(loc.ManifestKey(day0))}); err != nil {
		t.Fatal(err)
	}
	dst := storetest.Backends()[0].Open(t)
	if res, err := export.ImportS3(t.Context(), c, loc, export.DayRange{}, dst, nil); err != nil || res.Lines != 1 {
		t.Errorf("import without a manifest: %+v, %v", res, err)
	}
}
