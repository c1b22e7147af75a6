package main

import (
	"context"
	"encoding/csv"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
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
	"github.com/labtrail/labtrail/internal/store/sqlite"
	"github.com/labtrail/labtrail/internal/store/storetest"
)

// seededDB is a SQLite file holding n realistic events and their projects.
func seededDB(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var es []change.Event
	for i := range n {
		es = append(es, storetest.Realistic(i))
	}
	if _, err := st.Upsert(context.Background(), es...); err != nil {
		t.Fatal(err)
	}
	if err := st.PutProjects(context.Background(), store.Project{ID: 3, Path: "acme/service-3", Name: "s3"},
		store.Project{ID: 4, Path: "acme/service-4", Name: "s4"}); err != nil {
		t.Fatal(err)
	}
	return path
}

// eventSums are the migrate command's checksums of the events and
// timeline tables of the database at path.
func eventSums(t *testing.T, path string) []store.TableSum {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sums, err := store.Checksums(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.TableSum
	for _, s := range sums {
		if s.Table == "events" || s.Table == "timeline" {
			out = append(out, s)
		}
	}
	return out
}

func TestExportThenImportGivesTheSameHistory(t *testing.T) {
	src := seededDB(t, 1500)
	file := filepath.Join(t.TempDir(), "events.ndjson")
	_, errOut, code := labtrail(t, nil, "export", "--db", src, "--out", file)
	if code != 0 || !strings.Contains(errOut, "exported 1500 events") {
		t.Fatalf("export: exit %d\n%s", code, errOut)
	}
	dst := filepath.Join(t.TempDir(), "dst.db")
	out, errOut, code := labtrail(t, nil, "import", "--db", dst, file)
	if code != 0 || !strings.Contains(out, "1500 events read, 1500 stored") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	want, got := eventSums(t, src), eventSums(t, dst)
	if len(want) != 2 || want[0] != got[0] || want[1] != got[1] {
		t.Errorf("checksums: source %+v, imported %+v", want, got)
	}
	// Again: nothing new.
	if out, _, code := labtrail(t, nil, "import", "--db", dst, file); code != 0 || !strings.Contains(out, "1500 events read, 0 stored") {
		t.Errorf("second import: %s", out)
	}
}

func TestExportCSVWithFilters(t *testing.T) {
	src := seededDB(t, 200)
	out, errOut, code := labtrail(t, nil, "export", "--db", src, "--format", "csv", "--kind", "pipeline", "--project", "ACME/service-4",
		"--since", "2025-01-01", "--until", "2025-01-02T00:00:00Z")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// Pipelines are the odd events; project 4 is every 20th from 3.
	if len(rows) != 1+10 {
		t.Fatalf("%d rows: %q", len(rows), rows)
	}
	for _, r := range rows[1:] {
		if r[1] != "pipeline" || r[2] != "4" {
			t.Errorf("row %q", r)
		}
	}
}

func TestExportAndImportRefuseBadInput(t *testing.T) {
	src := seededDB(t, 5)
	bad := filepath.Join(t.TempDir(), "bad.ndjson")
	if err := os.WriteFile(bad, []byte("{\"id\":\"x\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"export", "--db", src, "--format", "xml"},
		{"export", "--db", src, "--kind", "wiki"},
		{"export", "--db", src, "--since", "yesterday"},
		{"export", "--db", src, "--since", "2025-02-01", "--until", "2025-01-01"},
		{"export", "--db", src, "--project", "nope/nope"},
		{"export", "--db", filepath.Join(t.TempDir(), "missing.db")},
		{"import", "--db", filepath.Join(t.TempDir(), "d.db"), filepath.Join(t.TempDir(), "missing.ndjson")},
		{"import", "--db", filepath.Join(t.TempDir(), "d.db"), bad},
		{"import", "--db", filepath.Join(t.TempDir(), "d.db"), "--from", "2025-01-01", bad},
		{"import", "--db", filepath.Join(t.TempDir(), "d.db")},
	} {
		if _, errOut, code := labtrail(t, nil, args...); code == 0 || errOut == "" {
			t.Errorf("%q: exit %d, %q", args, code, errOut)
		}
	}
	// A failed export leaves no file behind.
	out := filepath.Join(t.TempDir(), "x.ndjson")
	labtrail(t, nil, "export", "--db", src, "--project", "nope/nope", "--out", out)
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed export left its file")
	}
}

// serve's S3 export task writes the bucket; labtrail import s3:// reads it
// back into an empty database.
func TestS3ExportTaskAndImport(t *testing.T) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	env := map[string]string{"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_CONFIG_FILE": "/nonexistent",
		"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "LABTRAIL_EXPORT_S3_ENDPOINT": srv.URL, "LABTRAIL_EXPORT_S3_PATH_STYLE": "true",
		"LABTRAIL_EXPORT_S3_REGION": "us-east-1"}
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv("LABTRAIL_EXPORT_S3_URL", "s3://archive/labtrail")
	fs := newFlagSet("serve", "", os.Stderr)
	c, err := useSettings(fs, archiveSettings)()
	if err != nil {
		t.Fatal(err)
	}
	if c.Export.S3URL == nil || c.Export.ArchiveEach != time.Hour {
		t.Fatalf("config %+v", c.Export)
	}
	client, err := export.NewS3Client(t.Context(), c.Export.S3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String("archive")}); err != nil {
		t.Fatal(err)
	}
	src := seededDB(t, 600) // 2025-01-01, closed long ago
	st, err := sqlite.Open(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := archiveTasks(t.Context(), c, st, slog.New(slog.DiscardHandler))
	if err != nil || len(tasks) != 1 || tasks[0].Name != "export_s3" {
		t.Fatalf("tasks %+v, %v", tasks, err)
	}
	if err := tasks[0].Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	dst := filepath.Join(t.TempDir(), "dst.db")
	out, errOut, code := labtrail(t, env, "import", "--db", dst, "s3://archive/labtrail")
	if code != 0 || !strings.Contains(out, "600 events read") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	want, got := eventSums(t, src), eventSums(t, dst)
	if want[0] != got[0] || want[1] != got[1] {
		t.Errorf("checksums: source %+v, imported %+v", want, got)
	}
	if _, errOut, code := labtrail(t, env, "import", "--db", dst, "--kind", "wiki", "s3://archive/labtrail"); code == 0 {
		t.Errorf("an unknown kind was accepted: %s", errOut)
	}
}
