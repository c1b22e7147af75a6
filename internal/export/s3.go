package export

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// Location is where the S3 export writes: a bucket and a key prefix
// (without slashes at either end; "" for the bucket's root).
type Location struct {
	Bucket, Prefix string
}

// ParseS3URL reads s3://bucket/prefix.
func ParseS3URL(s string) (Location, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return Location{}, fmt.Errorf("%q is not an s3://bucket/prefix URL", s)
	}
	return Location{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}, nil
}

func (l Location) String() string { return "s3://" + path.Join(l.Bucket, l.Prefix) }

func (l Location) key(parts ...string) string {
	return path.Join(append([]string{l.Prefix}, parts...)...)
}

// ObjectKey is where a kind's events of a day go: Hive-style partitions
// (kind=K/date=YYYY-MM-DD), so Athena, DuckDB and Spark read the prefix as
// one table partitioned by kind and date.
func (l Location) ObjectKey(k change.Kind, day time.Time) string {
	return l.key("kind="+string(k), "date="+day.UTC().Format(time.DateOnly), "events.ndjson.gz")
}

// ManifestKey is where a day's manifest goes. Query engines skip paths
// starting with an underscore, so it is not read as data.
func (l Location) ManifestKey(day time.Time) string {
	return l.key("_manifests", "date="+day.UTC().Format(time.DateOnly), "manifest.json")
}

// S3Config is how to reach S3 or a compatible store (MinIO, Ceph, ...).
// Credentials come from the AWS SDK's default chain (environment, shared
// files, web identity, instance or task role).
type S3Config struct {
	Endpoint  string // "" for AWS itself
	Region    string // "" for the default chain's, else us-east-1
	PathStyle bool   // bucket in the path rather than the host name
}

// NewS3Client builds a client from c and the default chain.
func NewS3Client(ctx context.Context, c S3Config) (*s3.Client, error) {
	var opts []func(*config.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("S3: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle
	}), nil
}

// ObjectStore is the part of the S3 API the export uses; *s3.Client is
// one.
type ObjectStore interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// ArchiveSource is what the S3 export reads and records.
type ArchiveSource interface {
	Source
	ExportDays(ctx context.Context, f store.ExportDayFilter) ([]store.ExportDay, error)
	MarkExported(ctx context.Context, d store.ExportDay) error
}

// Archiver writes each closed UTC day to S3 once, one object per kind,
// and writes it again only when the day's events changed since.
type Archiver struct {
	Store ArchiveSource
	S3    ObjectStore
	Loc   Location
	Log   *slog.Logger
	// Now is the clock that says which days are closed; default time.Now.
	Now func() time.Time
}

// ArchiveResult says what one run of the export wrote.
type ArchiveResult struct {
	Objects   int   // event objects written
	Rewritten int   // of which replaced an earlier export of the day
	Events    int64 // events in them
	Manifests int
}

// Manifest describes one day's objects.
type Manifest struct {
	Date      string           `json:"date"`
	WrittenAt time.Time        `json:"written_at"`
	Objects   []ManifestObject `json:"objects"`
}

// ManifestObject is one kind's object of a day.
type ManifestObject struct {
	Kind       change.Kind `json:"kind"`
	Key        string      `json:"key"`
	Events     int64       `json:"events"`
	Bytes      int64       `json:"bytes"`
	SHA256     string      `json:"sha256"` // of the object as stored (gzip)
	ExportedAt time.Time   `json:"exported_at"`
	// Rewrites counts how many times the object was written again because
	// events of its day changed after it was first exported; Rewritten
	// says the latest write was one of those.
	Rewrites  int64 `json:"rewrites"`
	Rewritten bool  `json:"rewritten"`
	// Pruned says retention has deleted events of this day from labtrail:
	// a rewrite kept the object's events labtrail no longer holds.
	Pruned bool `json:"pruned"`
}

// Run exports every closed day that is pending, oldest first, and writes
// the manifest of each day it wrote.
func (a *Archiver) Run(ctx context.Context) (ArchiveResult, error) {
	var res ArchiveResult
	now := a.now
	log := a.log()
	today := store.UTCDay(now())
	for {
		pending, err := a.Store.ExportDays(ctx, store.ExportDayFilter{Before: today, PendingOnly: true, Limit: store.MaxLimit})
		if err != nil || len(pending) == 0 {
			return res, err
		}
		for i := 0; i < len(pending); {
			day := pending[i].Day
			for ; i < len(pending) && pending[i].Day.Equal(day); i++ {
				d, err := a.writeDay(ctx, pending[i])
				if err != nil {
					return res, err
				}
				res.Objects++
				res.Events += d.Events
				if d.Rewrites > pending[i].Rewrites {
					res.Rewritten++
				}
			}
			if err := a.writeManifest(ctx, day, now()); err != nil {
				return res, err
			}
			res.Manifests++
			log.Info("exported a day to S3", "date", day.Format(time.DateOnly), "location", a.Loc.String())
		}
	}
}

func (a *Archiver) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
}

// noSuchKey reports whether err says the object does not exist.
func noSuchKey(err error) bool {
	var nsk *types.NoSuchKey
	return errors.As(err, &nsk)
}

func (a *Archiver) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// writeDay writes one kind's object of one day and records it.
func (a *Archiver) writeDay(ctx context.Context, d store.ExportDay) (store.ExportDay, error) {
	tmp, err := os.CreateTemp("", "labtrail-export-*.ndjson.gz")
	if err != nil {
		return d, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	sum := sha256.New()
	gz := gzip.NewWriter(io.MultiWriter(tmp, sum))
	src := &idRecorder{Source: a.Store}
	if d.Pruned && d.ExportedVersion > 0 {
		src.ids = map[string]bool{}
	}
	f := store.Filter{Kind: d.Kind, Since: d.Day, Until: d.Day.AddDate(0, 0, 1)}
	n, err := Write(ctx, gz, src, NDJSON, f, nil)
	if err != nil {
		return d, fmt.Errorf("export %s of %s: %w", d.Kind, d.Day.Format(time.DateOnly), err)
	}
	if src.ids != nil {
		// Retention deleted events of this day: keep what the previous
		// object holds of them, or the rewrite would lose them.
		kept, err := a.keepPruned(ctx, a.Loc.ObjectKey(d.Kind, d.Day), src.ids, gz)
		if err != nil {
			return d, fmt.Errorf("export %s of %s: %w", d.Kind, d.Day.Format(time.DateOnly), err)
		}
		n += kept
	}
	if err := gz.Close(); err != nil {
		return d, err
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return d, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return d, err
	}
	digest := hex.EncodeToString(sum.Sum(nil))
	key := a.Loc.ObjectKey(d.Kind, d.Day)
	_, err = a.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(a.Loc.Bucket), Key: aws.String(key), Body: tmp, ContentLength: aws.Int64(size),
		ContentType: aws.String("application/gzip"),
		Metadata:    map[string]string{"sha256": digest, "events": strconv.FormatInt(n, 10)},
	})
	if err != nil {
		return d, fmt.Errorf("put %s: %w", key, err)
	}
	out := d
	out.ExportedVersion, out.ExportedAt, out.Events, out.Bytes, out.SHA256 = d.Version, a.now().UTC(), n, size, digest
	if d.ExportedVersion > 0 {
		out.Rewrites++
	}
	return out, a.Store.MarkExported(ctx, out)
}

// idRecorder is a Source that notes the ids it hands out, when ids is set.
type idRecorder struct {
	Source
	ids map[string]bool
}

func (r *idRecorder) ListHistories(ctx context.Context, f store.Filter) (store.HistoryPage, error) {
	p, err := r.Source.ListHistories(ctx, f)
	if r.ids != nil {
		for _, h := range p.Histories {
			r.ids[h.Event.ID] = true
		}
	}
	return p, err
}

// keepPruned copies to w the lines of the object at key whose events are
// not in have, and says how many.
func (a *Archiver) keepPruned(ctx context.Context, key string, have map[string]bool, w io.Writer) (int64, error) {
	out, err := a.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(a.Loc.Bucket), Key: aws.String(key)})
	if noSuchKey(err) {
		// Deleted from the bucket (a lifecycle rule, by hand): there is
		// nothing left to keep.
		a.log().Warn("the S3 object of a pruned day is gone; writing it from the store alone", "key", key)
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("get %s to keep its pruned events: %w", key, err)
	}
	defer out.Body.Close()
	gz, err := gzip.NewReader(out.Body)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	sc := bufio.NewScanner(gz)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var n int64
	for sc.Scan() {
		var id struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &id); err != nil || id.ID == "" {
			return n, fmt.Errorf("%s: %w", key, ErrBadLine)
		}
		if have[id.ID] {
			continue
		}
		if _, err := w.Write(append(sc.Bytes(), '\n')); err != nil {
			return n, err
		}
		n++
	}
	return n, sc.Err()
}

// writeManifest writes the manifest of day from the export state of its
// kinds.
func (a *Archiver) writeManifest(ctx context.Context, day, now time.Time) error {
	ds, err := a.Store.ExportDays(ctx, store.ExportDayFilter{Day: day, Limit: store.MaxLimit})
	if err != nil {
		return err
	}
	m := Manifest{Date: day.Format(time.DateOnly), WrittenAt: now.UTC(), Objects: []ManifestObject{}}
	for _, d := range ds {
		if d.ExportedVersion == 0 {
			continue
		}
		m.Objects = append(m.Objects, ManifestObject{Kind: d.Kind, Key: a.Loc.ObjectKey(d.Kind, d.Day), Events: d.Events,
			Bytes: d.Bytes, SHA256: d.SHA256, ExportedAt: d.ExportedAt.UTC(), Rewrites: d.Rewrites, Rewritten: d.Rewrites > 0,
			Pruned: d.Pruned})
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	key := a.Loc.ManifestKey(day)
	_, err = a.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(a.Loc.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))), ContentType: aws.String("application/json")})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// DayRange selects days of the bucket to import: From and To inclusive,
// zero for no bound.
type DayRange struct {
	From, To time.Time
	Kinds    []change.Kind // none: every kind
}

func (r DayRange) has(k change.Kind, day time.Time) bool {
	return (r.From.IsZero() || !day.Before(store.UTCDay(r.From))) && (r.To.IsZero() || !day.After(store.UTCDay(r.To))) &&
		(len(r.Kinds) == 0 || slices.Contains(r.Kinds, k))
}

// ErrChecksum says an object does not match its manifest.
var ErrChecksum = errors.New("object does not match its manifest's SHA-256")

// ImportS3 imports the objects of the days r selects at loc into dst,
// checking each against its day's manifest, and says what it read and
// changed.
func ImportS3(ctx context.Context, c ObjectStore, loc Location, r DayRange, dst Importer, progress func(key string, res ImportResult)) (ImportResult, error) {
	var (
		res   ImportResult
		token *string
	)
	manifests := map[string]map[string]string{} // date -> key -> sha256
	for {
		page, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(loc.Bucket),
			Prefix: aws.String(loc.key("kind=") + ""), ContinuationToken: token})
		if err != nil {
			return res, fmt.Errorf("list %s: %w", loc, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			k, day, ok := parseObjectKey(loc, key)
			if !ok || !r.has(k, day) {
				continue
			}
			date := day.Format(time.DateOnly)
			if manifests[date] == nil {
				if manifests[date], err = readManifest(ctx, c, loc, day); err != nil {
					return res, err
				}
			}
			n, err := importObject(ctx, c, loc, key, manifests[date][key], dst)
			res = res.Add(n)
			if err != nil {
				return res, err
			}
			if progress != nil {
				progress(key, res)
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return res, nil
		}
		token = page.NextContinuationToken
	}
}

// parseObjectKey reads kind and day from an ObjectKey.
func parseObjectKey(loc Location, key string) (change.Kind, time.Time, bool) {
	rest := strings.TrimPrefix(key, loc.key("kind="))
	kind, rest, ok := strings.Cut(rest, "/date=")
	if !ok {
		return "", time.Time{}, false
	}
	date, file, ok := strings.Cut(rest, "/")
	if !ok || file != "events.ndjson.gz" {
		return "", time.Time{}, false
	}
	day, err := time.Parse(time.DateOnly, date)
	k := change.Kind(kind)
	if err != nil || !k.Valid() || loc.ObjectKey(k, day) != key {
		return "", time.Time{}, false
	}
	return k, day, true
}

// readManifest returns the SHA-256 of each object of day's manifest; none
// when the day has no manifest (an export cut short).
func readManifest(ctx context.Context, c ObjectStore, loc Location, day time.Time) (map[string]string, error) {
	key := loc.ManifestKey(day)
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(key)})
	if noSuchKey(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	var m Manifest
	if err := json.NewDecoder(io.LimitReader(out.Body, 1<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	sums := map[string]string{}
	for _, o := range m.Objects {
		sums[o.Key] = o.SHA256
	}
	return sums, nil
}

func importObject(ctx context.Context, c ObjectStore, loc Location, key, want string, dst Importer) (ImportResult, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(key)})
	if err != nil {
		return ImportResult{}, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	// Checked whole before anything of it is stored.
	tmp, err := os.CreateTemp("", "labtrail-import-*.ndjson.gz")
	if err != nil {
		return ImportResult{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	sum := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, sum), out.Body); err != nil {
		return ImportResult{}, fmt.Errorf("get %s: %w", key, err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); want != "" && got != want {
		return ImportResult{}, fmt.Errorf("%s: %w (%s, manifest says %s)", key, ErrChecksum, got, want)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return ImportResult{}, err
	}
	gz, err := gzip.NewReader(tmp)
	if err != nil {
		return ImportResult{}, fmt.Errorf("%s: %w", key, err)
	}
	res, err := Read(ctx, gz, dst, nil)
	if err != nil {
		return res, fmt.Errorf("%s: %w", key, err)
	}
	return res, nil
}
