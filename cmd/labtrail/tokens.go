package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
)

// authOn says whether access control applies: as LABTRAIL_AUTH says, or,
// unset, unless the server listens on a loopback address only.
func authOn(mode, addr string) bool {
	switch mode {
	case "on":
		return true
	case "off":
		return false
	}
	return !loopback(addr)
}

// loopback reports whether addr (host:port) listens on a loopback address
// only: 127.0.0.0/8, ::1 or localhost. An empty host listens everywhere.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

// enableAuth turns the server's access control on or off as c says, and
// warns where it is off though others may reach the server.
func enableAuth(ctx context.Context, api *server.Server, st store.Store, c *config, log *slog.Logger) error {
	if !authOn(c.Auth, c.Addr) {
		if !loopback(c.Addr) {
			log.Warn("access control is off (LABTRAIL_AUTH=off) on " + c.Addr + ", which is not a loopback address: " +
				"anyone who reaches it can read the whole history and replay webhooks; set LABTRAIL_AUTH=on")
		}
		return nil
	}
	tokens := auth.NewTokens(st)
	api.EnableAuth(tokens, server.AuthOptions{MetricsPublic: c.MetricsPublic, Audit: st})
	// Cookies are Secure except on loopback, where there is no TLS to
	// carry them.
	sessions := auth.NewSessions(st, tokens, !loopback(c.Addr))
	api.EnableSessions(sessions)
	if err := enableGitLabSignin(api, sessions, c, log); err != nil {
		return err
	}
	ts, err := st.Tokens(ctx)
	if err != nil {
		return err
	}
	live := 0
	for _, t := range ts {
		if t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || t.ExpiresAt.After(time.Now())) {
			live++
		}
	}
	if live == 0 {
		log.Warn("access control is on and no API token exists yet: make one with `labtrail tokens create --name NAME --scope read|deploy|admin`")
	}
	return nil
}

func runTokens(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "tokens create --name NAME --scope read|deploy|admin [--expires 90d] | tokens list | tokens revoke NAME|ID"
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, "Usage: labtrail "+usage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	fs := newFlagSet("tokens "+sub, usage, stderr)
	build := useSettings(fs, []*setting{dbSetting, logLevelSetting})
	var name, scope, expires string
	if sub == "create" {
		fs.StringVar(&name, "name", "", "the token's name, unique (e.g. the CI job or person it is for)")
		fs.StringVar(&scope, "scope", "", "read (every GET), deploy (reporting deployments) or admin (everything)")
		fs.StringVar(&expires, "expires", "", "lifetime, e.g. 90d or 720h (default: never expires)")
	}
	var ref string
	if sub == "revoke" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		ref, rest = rest[0], rest[1:]
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	c, err := build()
	if err != nil {
		return err
	}
	st, err := openTokens(ctx, c.DB)
	if err != nil {
		return err
	}
	defer st.Close()
	record := func(action, target string) { recordCLI(ctx, st, stderr, action, target, "") }
	switch sub {
	case "create":
		sc, err := auth.ParseScope(scope)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return errUsage
		}
		ttl, err := parseLifetime(expires)
		if err != nil {
			fmt.Fprintln(stderr, "--expires:", err)
			return errUsage
		}
		raw, t, err := auth.NewTokens(st).Create(ctx, name, sc, ttl)
		if err != nil {
			return err
		}
		record("token.create", t.Name)
		fmt.Fprintln(stdout, raw)
		exp := "never expires"
		if !t.ExpiresAt.IsZero() {
			exp = "expires " + t.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(stderr, "token %q (scope %s, %s) made: it is shown this once and cannot be read again; send it as Authorization: Bearer <token>\n",
			t.Name, t.Scope, exp)
		return nil
	case "list":
		ts, err := st.Tokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPE\tCREATED\tLAST USED\tEXPIRES\tSTATE")
		for _, t := range ts {
			state := "active"
			switch {
			case !t.RevokedAt.IsZero():
				state = "revoked " + day(t.RevokedAt)
			case !t.ExpiresAt.IsZero() && !t.ExpiresAt.After(time.Now()):
				state = "expired"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Scope, day(t.CreatedAt), orNever(t.LastUsedAt), orNever(t.ExpiresAt), state)
		}
		return tw.Flush()
	case "revoke":
		if ref == "" {
			fmt.Fprintln(stderr, "Usage: labtrail tokens revoke NAME|ID")
			return errUsage
		}
		t, err := st.RevokeToken(ctx, ref, time.Now().UTC())
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no token named or numbered %q (labtrail tokens list shows them)", ref)
		}
		if err != nil {
			return err
		}
		record("token.revoke", t.Name)
		fmt.Fprintf(stdout, "token %q revoked\n", t.Name)
		return nil
	}
	fmt.Fprintf(stderr, "unknown tokens command %q\nUsage: labtrail %s\n", sub, usage)
	return errUsage
}

// parseLifetime reads 90d, 12h or 720h30m; "" is none.
func parseLifetime(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(v, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("%q: use a number of days such as 90d, or a duration such as 720h", v)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: use a number of days such as 90d, or a duration such as 720h", v)
	}
	return d, nil
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") }

func orNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return day(t)
}
