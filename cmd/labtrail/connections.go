package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/jobs"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
)

// stdin is where labtrail connections add reads a token (tests set it).
var stdin io.Reader = os.Stdin

// keyring is the keyring c's secret key makes, and the old key's too
// when c has one (labtrail secrets rotate).
func (c config) keyring() (*auth.Keyring, error) {
	cur, err := auth.LoadKey(c.SecretKey, c.SecretKeyFile)
	if err != nil {
		return nil, err
	}
	if c.OldSecretKey == "" && c.OldSecretKeyFile == "" {
		return auth.NewKeyring(cur), nil
	}
	old, err := auth.LoadKey(c.OldSecretKey, c.OldSecretKeyFile)
	if err != nil {
		return nil, fmt.Errorf("the old key: %w", err)
	}
	return auth.NewKeyring(cur, old), nil
}

// openSealed returns c's keyring and store, the key read first: a
// command that cannot read the secrets opens nothing.
func (c config) openSealed(ctx context.Context) (*auth.Keyring, store.Store, error) {
	ring, err := c.keyring()
	if err != nil {
		return nil, nil, err
	}
	st, err := openStore(ctx, c.DB)
	return ring, st, err
}

func subcommand(args []string, usage string, stderr io.Writer) (string, []string, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, "Usage: labtrail "+usage)
		if len(args) == 0 {
			return "", nil, errUsage
		}
		return "", nil, errHelpShown
	}
	return args[0], args[1:], nil
}

var errHelpShown = errors.New("help shown")

func runSecrets(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "secrets keygen | secrets rotate (LABTRAIL_SECRET_KEY: the new key; LABTRAIL_OLD_SECRET_KEY or --old-key-file: the current one)"
	sub, rest, err := subcommand(args, usage, stderr)
	if err != nil {
		return ignoreHelp(err)
	}
	switch sub {
	case "keygen":
		fs := newFlagSet("secrets keygen", "secrets keygen", stderr)
		if err := parse(fs, rest); err != nil {
			return err
		}
		k, err := auth.NewKeyText()
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, k)
		fmt.Fprintln(stderr, "a new secret key: keep it as LABTRAIL_SECRET_KEY (or in the file LABTRAIL_SECRET_KEY_FILE names); without it the stored connection secrets cannot be read")
		return nil
	case "rotate":
		fs := newFlagSet("secrets rotate", "secrets rotate [flags]", stderr)
		build := useSettings(fs, secretKeySettings, oldSecretKeySettings, []*setting{dbSetting, logLevelSetting})
		if err := parse(fs, rest); err != nil {
			return err
		}
		c, err := build()
		if err != nil {
			return err
		}
		if c.OldSecretKey == "" && c.OldSecretKeyFile == "" {
			return errors.New("give the key the secrets are encrypted under now as LABTRAIL_OLD_SECRET_KEY or --old-key-file, and the new one as LABTRAIL_SECRET_KEY")
		}
		ring, st, err := c.openSealed(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		r, err := ring.Rotate(ctx, st, time.Now().UTC())
		if err != nil {
			return err
		}
		recordCLI(ctx, st, stderr, "secrets.rotate", ring.CurrentID(), r.String())
		fmt.Fprintf(stdout, "%s under key %s; the old key is no longer needed (restart serve with the new key)\n", r, ring.CurrentID())
		return nil
	}
	fmt.Fprintf(stderr, "unknown secrets command %q\nUsage: labtrail %s\n", sub, usage)
	return errUsage
}

// recordCLI appends a command's admin action to the admin audit trail; a
// failure to is a warning, not the command's failure.
func recordCLI(ctx context.Context, st store.AdminAuditor, stderr io.Writer, action, target, detail string) {
	if err := st.AppendAdminAction(ctx, store.AdminAction{Time: time.Now().UTC(), Actor: "cli", Action: action,
		Target: target, Detail: detail, OK: true}); err != nil {
		fmt.Fprintln(stderr, "warning: admin audit:", err)
	}
}

func ignoreHelp(err error) error {
	if errors.Is(err, errHelpShown) {
		return nil
	}
	return err
}

func runConnections(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "connections add --name N --url U [flags] (token on stdin, or LABTRAIL_CONNECTION_TOKEN) | connections list | connections remove NAME"
	sub, rest, err := subcommand(args, usage, stderr)
	if err != nil {
		return ignoreHelp(err)
	}
	fs := newFlagSet("connections "+sub, usage, stderr)
	groups := [][]*setting{{dbSetting, logLevelSetting}}
	var spec auth.ConnectionSpec
	var repos, grps string
	if sub == "add" {
		groups = append(groups, secretKeySettings)
		fs.StringVar(&spec.Name, "name", "", "the connection's name: lowercase letters, digits, _; its events' ids start with it")
		fs.StringVar(&spec.URL, "url", "", "GitLab's base URL, e.g. https://gitlab.example.org")
		fs.StringVar(&repos, "repos", "", "comma-separated project paths or ids; empty: every project the token is a member of")
		fs.StringVar(&grps, "groups", "", "comma-separated group paths or ids whose projects are synced")
		fs.IntVar(&spec.MaxProjects, "max-projects", auth.DefaultMaxProjects, "most projects synced")
		fs.BoolVar(&spec.IncludeArchived, "include-archived", false, "also sync archived projects")
		fs.IntVar(&spec.RequestsPerMinute, "requests-per-minute", auth.DefaultRequestsPerMinute, "GitLab API requests per minute")
	}
	var name string
	if sub == "remove" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	build := useSettings(fs, groups...)
	if err := parse(fs, rest); err != nil {
		return err
	}
	c, err := build()
	if err != nil {
		return err
	}
	var ring *auth.Keyring
	if sub == "add" {
		// The key first: a token read and then not storable is wasted.
		if ring, err = c.keyring(); err != nil {
			return err
		}
	}
	st, err := openStore(ctx, c.DB)
	if err != nil {
		return err
	}
	defer st.Close()
	record := func(action, target string) { recordCLI(ctx, st, stderr, action, target, "") }
	switch sub {
	case "add":
		spec.Repos, spec.Groups = splitList(repos), splitList(grps)
		spec.Token = os.Getenv("LABTRAIL_CONNECTION_TOKEN")
		if spec.Token == "" {
			line, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read the token from stdin: %w", err)
			}
			spec.Token = strings.TrimSpace(line)
		}
		if spec.Token == "" {
			return errors.New("no token: pipe GitLab's token (read_api scope) into stdin, or set LABTRAIL_CONNECTION_TOKEN")
		}
		spec.WebhookSecret = os.Getenv("LABTRAIL_CONNECTION_WEBHOOK_SECRET")
		conn, err := ring.NewConnection(spec, time.Now())
		if err != nil {
			fmt.Fprintln(stderr, err)
			return errUsage
		}
		if _, err := st.AddConnection(ctx, conn); errors.Is(err, store.ErrConnectionExists) {
			return fmt.Errorf("a connection named %q exists: remove it first", conn.Name)
		} else if err != nil {
			return err
		}
		record("connection.add", conn.Name)
		fmt.Fprintf(stdout, "connection %q to %s added; its token is stored encrypted under key %s\n", conn.Name, conn.URL, ring.CurrentID())
		if spec.WebhookSecret == "" {
			fmt.Fprintln(stdout, "no webhook secret (LABTRAIL_CONNECTION_WEBHOOK_SECRET): it is polled only")
		} else {
			fmt.Fprintf(stdout, "its webhooks: POST /api/v1/webhooks/gitlab/%s with its secret\n", conn.Name)
		}
		fmt.Fprintln(stdout, "a running labtrail serve syncs it at its next poll interval")
		return nil
	case "list":
		cs, err := st.Connections(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tURL\tSELECTION\tREQUESTS/MIN\tWEBHOOK\tKEY\tADDED")
		for _, c := range cs {
			hook := "no"
			if !c.WebhookSecret.IsZero() {
				hook = "/api/v1/webhooks/gitlab/" + c.Name
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", c.Name, c.URL, selectionText(c), c.RequestsPerMinute, hook, c.Token.KeyID, day(c.CreatedAt))
		}
		if len(cs) == 0 {
			fmt.Fprintln(stderr, "no connections beside the default one (GITLAB_URL, GITLAB_TOKEN)")
		}
		return tw.Flush()
	case "remove":
		if name == "" {
			fmt.Fprintln(stderr, "Usage: labtrail connections remove NAME")
			return errUsage
		}
		if err := st.RemoveConnection(ctx, name); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no connection named %q (labtrail connections list shows them)", name)
		} else if err != nil {
			return err
		}
		record("connection.remove", name)
		fmt.Fprintf(stdout, "connection %q removed; its events stay\n", name)
		return nil
	}
	fmt.Fprintf(stderr, "unknown connections command %q\nUsage: labtrail %s\n", sub, usage)
	return errUsage
}

func selectionText(c store.Connection) string {
	var parts []string
	if len(c.Repos) > 0 {
		parts = append(parts, "repos "+strings.Join(c.Repos, ","))
	}
	if len(c.Groups) > 0 {
		parts = append(parts, "groups "+strings.Join(c.Groups, ","))
	}
	if len(parts) == 0 {
		parts = append(parts, "membership")
	}
	return strings.Join(parts, "; ") + fmt.Sprintf(" (max %d)", c.MaxProjects)
}

// connectionManager runs the added GitLab connections beside serve's
// default one: a poller each, with its own client, rate limit and
// selection, and a webhook endpoint each. The job queue says when a
// connection is synced and on which replica (sync); every replica's
// manager can run each stored connection. It implements
// server.Connections.
type connectionManager struct {
	st    store.Store
	ring  *auth.Keyring
	base  config // the settings the connections share (branches, intervals, limits)
	log   *slog.Logger
	audit func(gitlab.AuditRecord)
	conv  *ingest.Converter
	tel   ingest.Observer
	// defaultInfo is the environment's connection, listed first.
	defaultInfo server.ConnectionInfo
	// healDelay is how long after a webhook that lacks details its
	// project is synced (default 30s, as the job queue's).
	healDelay time.Duration
	// reconcileEvery is how often the replica compares the connections it
	// runs with the stored ones (default 15s): one added, removed or
	// changed through another replica's API or the CLI gets its webhook
	// endpoint started or stopped here within that.
	reconcileEvery time.Duration

	mu      sync.Mutex
	ctx     context.Context
	running map[string]*runningConnection
	queue   *jobs.Queue // nil until serve's queue is built
	wg      sync.WaitGroup
}

type runningConnection struct {
	conn   store.Connection
	scope  ingest.ConnectionScope
	hook   http.Handler // nil: no webhook secret
	poller *ingest.Poller
	gl     *gitlab.Client
	ctx    context.Context // ends when it stops on this replica
	stop   context.CancelFunc
}

// start runs every stored connection until ctx ends.
func (m *connectionManager) start(ctx context.Context) error {
	m.mu.Lock()
	m.ctx, m.running = ctx, map[string]*runningConnection{}
	m.mu.Unlock()
	cs, err := m.st.Connections(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := m.run(c); err != nil {
			// One connection's bad key or URL stops only it.
			m.log.Error("GitLab connection not started", "connection", c.Name, "err", err)
		}
	}
	every := m.reconcileEvery
	if every <= 0 {
		every = 15 * time.Second
	}
	m.wg.Add(1)
	go m.reconcile(ctx, every)
	return nil
}

// reconcile makes the connections running on this replica the stored
// ones, every so often, until ctx ends: it starts those added through
// another replica or the CLI, so their webhooks are taken here too, and
// stops those removed or changed there (a changed one starts again as
// stored). Their syncs come from the job queue either way.
func (m *connectionManager) reconcile(ctx context.Context, every time.Duration) {
	defer m.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	failed := map[string]string{} // the last error of a connection that would not start
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cs, err := m.st.Connections(ctx)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("reading the stored GitLab connections failed", "err", err)
			}
			continue
		}
		stored := make(map[string]store.Connection, len(cs))
		for _, c := range cs {
			stored[c.Name] = c
		}
		var stale []string
		m.mu.Lock()
		for name, rc := range m.running {
			if c, ok := stored[name]; !ok || !sameConnection(rc.conn, c) {
				stale = append(stale, name)
			}
		}
		m.mu.Unlock()
		for _, name := range stale {
			m.stopConnection(name)
			if _, ok := stored[name]; !ok {
				m.log.Info("GitLab connection removed; stopped here", "connection", name)
			}
		}
		for name, c := range stored {
			m.mu.Lock()
			_, running := m.running[name]
			m.mu.Unlock()
			if running {
				delete(failed, name)
				continue
			}
			err := m.run(c)
			switch {
			case err == nil || errors.Is(err, store.ErrConnectionExists):
				delete(failed, name)
			case failed[name] != err.Error():
				failed[name] = err.Error()
				m.log.Error("GitLab connection not started", "connection", name, "err", err)
			}
		}
		for name := range failed {
			if _, ok := stored[name]; !ok {
				delete(failed, name)
			}
		}
	}
}

// wait returns once every connection's healing syncs have stopped.
func (m *connectionManager) wait() { m.wg.Wait() }

func (m *connectionManager) run(c store.Connection) error {
	token, secret, err := m.ring.OpenConnection(c)
	if err != nil {
		return err
	}
	cc := m.base
	cc.GitLabURL, cc.Token, cc.RequestsPerMinute = c.URL, token, c.RequestsPerMinute
	cc.Repos, cc.Groups, cc.MaxProjects, cc.IncludeArchived = c.Repos, c.Groups, c.MaxProjects, c.IncludeArchived
	name := c.Name
	log := m.log.With("connection", name)
	audit := func(r gitlab.AuditRecord) {
		// The audit log tells the connections' calls apart by their job.
		r.Job = store.ConnectionEventID(name, r.Job)
		if m.audit != nil {
			m.audit(r)
		}
	}
	gl, err := newClient(cc, log, audit)
	if err != nil {
		return err
	}
	projects := m.st.ConnectionProjects(name)
	p := cc.poller(gl, ingest.ConnectionStore(m.st, name, projects), log)
	healer := &connectionHealer{poller: p, projects: projects, delay: m.healDelay, log: log, wg: &m.wg, pending: map[int64]bool{}}
	rc := &runningConnection{conn: c, poller: p, gl: gl,
		scope: ingest.ConnectionScope{Projects: projects, Selection: p.Selection, Branches: cc.Branches, Heal: healer}}
	if secret != "" {
		wh, err := ingest.NewWebhookHandler(ingest.WebhookConfig{Secrets: []string{secret}, Allow: cc.WebhookAllow,
			Memory: cc.WebhookMemory, Connection: name}, m.st, m.conv, log)
		if err != nil {
			return err
		}
		if m.tel != nil {
			wh.SetObserver(m.tel)
		}
		rc.hook = wh
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil || m.ctx.Err() != nil {
		return errors.New("labtrail is stopping")
	}
	if _, ok := m.running[name]; ok {
		return store.ErrConnectionExists
	}
	ctx, stop := context.WithCancel(m.ctx)
	rc.ctx, rc.stop = ctx, stop
	healer.ctx = ctx
	m.running[name] = rc
	// Polled by the job queue (sync), on one replica an interval.
	log.Info("GitLab connection started", "gitlab", c.URL, "webhook", rc.hook != nil)
	return nil
}

// sync syncs the named connection once: the job queue's work
// (jobs.Connections.Sync), on whichever replica took the connection's
// job. It uses this replica's poller of it, built here on demand when the
// connection was added through another replica's API or the CLI since
// this one started, so a job never waits for a replica that knows it.
// A connection no longer stored is stopped here and its job cancelled.
// A failed sync is logged and not retried, as each interval's sync was
// before the queue ran them: the next interval's sync resumes from the
// cursors, and a retry would spend the token's rate limit again at once.
func (m *connectionManager) sync(ctx context.Context, name string) error {
	rc, err := m.current(ctx, name)
	if err != nil {
		return err
	}
	// The job ends too when the connection stops on this replica
	// (removed here, or labtrail stopping).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(rc.ctx, cancel)()
	res, err := rc.poller.SyncAll(ctx)
	if err == nil {
		err = res.Err()
	}
	if err != nil && ctx.Err() == nil {
		m.log.Warn("connection sync failed", "connection", name, "err", err)
	} else if err != nil {
		m.log.Warn("connection sync cut off; the next one resumes from its cursors", "connection", name, "err", err)
	} else {
		m.log.Info("connection synced", "connection", name, "requests", rc.gl.Requests(), "took", res.Duration.Round(time.Millisecond))
	}
	return nil
}

// current is this replica's running connection of that name as stored
// now: started if it is not running here yet, started again if the name
// was removed and added anew, stopped if it is no longer
// stored (an error wrapping jobs.ErrNoConnection).
func (m *connectionManager) current(ctx context.Context, name string) (*runningConnection, error) {
	c, err := m.st.ConnectionByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		m.stopConnection(name)
		return nil, fmt.Errorf("connection %q: %w", name, jobs.ErrNoConnection)
	}
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	rc := m.running[name]
	m.mu.Unlock()
	if rc != nil && sameConnection(rc.conn, c) {
		return rc, nil
	}
	if rc != nil {
		m.stopConnection(name)
	}
	if err := m.run(c); err != nil && !errors.Is(err, store.ErrConnectionExists) {
		return nil, fmt.Errorf("start connection %q: %w", name, err)
	}
	m.mu.Lock()
	rc = m.running[name]
	m.mu.Unlock()
	if rc == nil {
		return nil, fmt.Errorf("connection %q stopped as it started", name)
	}
	return rc, nil
}

// sameConnection reports whether a and b are one stored connection, not
// one removed and another added under its name: SQLite may give the new
// one the old id, never the same freshly sealed token (a new nonce).
// A token re-sealed by labtrail secrets rotate differs too, which only
// starts the connection again.
func sameConnection(a, b store.Connection) bool {
	return a.ID == b.ID && a.URL == b.URL && bytes.Equal(a.Token.Data, b.Token.Data)
}

// stopConnection stops this replica's poller and webhook of a connection.
func (m *connectionManager) stopConnection(name string) {
	m.mu.Lock()
	rc, ok := m.running[name]
	delete(m.running, name)
	m.mu.Unlock()
	if ok {
		rc.stop()
	}
}

// names lists the stored connections (jobs.Connections.Names).
func (m *connectionManager) names(ctx context.Context) ([]string, error) {
	cs, err := m.st.Connections(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out, nil
}

// queueJobs is the job queue's part of the connections: each one's sync once
// per poll interval across every replica.
func (m *connectionManager) queueJobs() *jobs.Connections {
	return &jobs.Connections{Interval: orDefault(m.base.PollInterval, 5*time.Minute), Names: m.names, Sync: m.sync}
}

// useQueue makes Add enqueue a new connection's first sync at once.
func (m *connectionManager) useQueue(q *jobs.Queue) {
	m.mu.Lock()
	m.queue = q
	m.mu.Unlock()
}

// scopes are the converter's view of the running connections.
func (m *connectionManager) scopes() map[string]ingest.ConnectionScope {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]ingest.ConnectionScope, len(m.running))
	for name, rc := range m.running {
		out[name] = rc.scope
	}
	return out
}

// Webhook implements server.Connections.
func (m *connectionManager) Webhook(name string) (http.Handler, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rc, ok := m.running[name]
	if !ok || rc.hook == nil {
		return nil, false
	}
	return rc.hook, true
}

// List implements server.Connections.
func (m *connectionManager) List(ctx context.Context) ([]server.ConnectionInfo, error) {
	cs, err := m.st.Connections(ctx)
	if err != nil {
		return nil, err
	}
	def := m.defaultInfo
	if def.Sync, err = server.SummarizeSync(ctx, m.st); err != nil {
		return nil, err
	}
	out := []server.ConnectionInfo{def}
	for _, c := range cs {
		info := server.ConnectionInfo{Connection: c, Source: "store"}
		if !c.WebhookSecret.IsZero() {
			info.Webhook = "/api/v1/webhooks/gitlab/" + c.Name
		}
		if info.Sync, err = server.SummarizeSync(ctx, m.st.ConnectionProjects(c.Name)); err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	sort.SliceStable(out[1:], func(i, j int) bool { return out[1+i].ID < out[1+j].ID })
	return out, nil
}

// Add implements server.Connections: stored, then started at once.
func (m *connectionManager) Add(ctx context.Context, spec auth.ConnectionSpec) (store.Connection, error) {
	c, err := m.ring.NewConnection(spec, time.Now())
	if err != nil {
		return store.Connection{}, fmt.Errorf("%w: %v", server.ErrBadConnection, err)
	}
	if c, err = m.st.AddConnection(ctx, c); err != nil {
		return store.Connection{}, err
	}
	if err := m.run(c); err != nil {
		m.log.Error("GitLab connection stored but not started", "connection", c.Name, "err", err)
	}
	m.mu.Lock()
	q := m.queue
	m.mu.Unlock()
	if q != nil {
		// Its first sync now, not at the next interval; on whichever
		// replica takes it.
		if _, err := q.SyncConnection(ctx, c.Name); err != nil {
			m.log.Warn("first sync of the new connection not queued; the next interval's runs", "connection", c.Name, "err", err)
		}
	}
	return c, nil
}

// Remove implements server.Connections: stopped, then removed.
func (m *connectionManager) Remove(ctx context.Context, name string) error {
	if err := m.st.RemoveConnection(ctx, name); err != nil {
		return err
	}
	// No longer listed, so no sync of it is queued any more; one queued
	// already is cancelled by whichever replica takes it (sync).
	m.stopConnection(name)
	return nil
}

// startConnections runs the stored GitLab connections beside serve's
// default one, when a secret key is set: without it they cannot be
// read, and the admin API of connections is off. Its stop ends their
// pollers and waits for their healing syncs.
func startConnections(ctx context.Context, c config, st store.Store, conv *ingest.Converter, audit func(gitlab.AuditRecord),
	tel ingest.Observer, log *slog.Logger) (*connectionManager, func(), error) {
	ring, err := c.keyring()
	if errors.Is(err, auth.ErrNoKey) {
		if cs, err := st.Connections(ctx); err == nil && len(cs) > 0 {
			log.Warn("GitLab connections are stored but LABTRAIL_SECRET_KEY is not set: they are not polled and their webhooks are refused", "connections", len(cs))
		}
		return nil, func() {}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	def := server.ConnectionInfo{Source: "environment", Connection: store.Connection{Name: store.DefaultConnection, URL: c.GitLabURL,
		Repos: c.Repos, Groups: c.Groups, MaxProjects: c.MaxProjects, IncludeArchived: c.IncludeArchived, RequestsPerMinute: c.RequestsPerMinute}}
	if len(c.WebhookSecrets) > 0 {
		def.Webhook = "/api/v1/webhooks/gitlab"
	}
	m := &connectionManager{st: st, ring: ring, base: c, log: log, audit: audit, conv: conv, tel: tel, defaultInfo: def,
		reconcileEvery: c.connectionsReconcile}
	conv.Connections = m.scopes
	mctx, cancel := context.WithCancel(ctx)
	if err := m.start(mctx); err != nil {
		cancel()
		return nil, nil, err
	}
	return m, func() { cancel(); m.wait() }, nil
}

// connectionHealer syncs a project of a connection a little after a
// webhook that lacked details asked for it (ingest.Healer), once for a
// burst: the job queue does this for the default connection.
type connectionHealer struct {
	ctx      context.Context // the connection's: ends with it
	poller   *ingest.Poller
	projects store.ProjectStore
	delay    time.Duration
	log      *slog.Logger
	wg       *sync.WaitGroup

	mu      sync.Mutex
	pending map[int64]bool
}

func (h *connectionHealer) HealProject(_ context.Context, id int64, path string) error {
	h.mu.Lock()
	if h.pending[id] || h.ctx == nil {
		h.mu.Unlock()
		return nil
	}
	h.pending[id] = true
	h.mu.Unlock()
	delay := h.delay
	if delay <= 0 {
		delay = 30 * time.Second
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		select {
		case <-h.ctx.Done():
			return
		case <-time.After(delay):
		}
		h.mu.Lock()
		delete(h.pending, id)
		h.mu.Unlock()
		ps, err := h.projects.Projects(h.ctx)
		if err != nil {
			h.log.Warn("healing sync", "project", path, "err", err)
			return
		}
		for _, p := range ps {
			if p.ID == id {
				if _, err := h.poller.SyncProject(h.ctx, p); err != nil && h.ctx.Err() == nil {
					h.log.Warn("healing sync", "project", path, "err", err)
				}
				return
			}
		}
		// Not stored yet: its connection's next poll finds it.
	}()
	return nil
}

// useConnection makes c the added connection named (labtrail hooks
// --connection): its URL, token, rate limit, selection and webhook
// secret. "" and "default" leave c the environment's.
func (c *config) useConnection(ctx context.Context, name string) error {
	if name == "" || name == store.DefaultConnection {
		return nil
	}
	ring, st, err := c.openSealed(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	conn, err := st.ConnectionByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no connection named %q (labtrail connections list shows them)", name)
	}
	if err != nil {
		return err
	}
	token, secret, err := ring.OpenConnection(conn)
	if err != nil {
		return err
	}
	c.GitLabURL, c.Token, c.RequestsPerMinute = conn.URL, token, conn.RequestsPerMinute
	c.Repos, c.Groups, c.MaxProjects, c.IncludeArchived = conn.Repos, conn.Groups, conn.MaxProjects, conn.IncludeArchived
	c.WebhookSecrets = nil
	if secret != "" {
		c.WebhookSecrets = []string{secret}
	}
	return nil
}

// Projects implements server.Connections.
func (m *connectionManager) Projects(ctx context.Context, name string) (store.ProjectStore, error) {
	if _, err := m.st.ConnectionByName(ctx, name); err != nil {
		return nil, err
	}
	return m.st.ConnectionProjects(name), nil
}
