// Command labtrail keeps a complete history of what changes in a team's
// GitLab projects. Run `labtrail help` for the commands.
package main

import (
	"github.com/labtrail/labtrail/internal/gitlab"

	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// errUsage marks errors caused by the command line itself (exit code 2).
var errUsage = errors.New("usage")

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "sync GitLab on a schedule and serve the API", runServe},
		{"sync", "sync GitLab into the database (--once: one pass, then exit)", runSync},
		{"check", "check the GitLab URL and token", runCheck},
		{"hooks", "install, list and test the GitLab webhooks that feed labtrail", runHooks},
		{"tokens", "create, list and revoke the API tokens that access control asks for", runTokens},
		{"secrets", "make a secret key, and re-encrypt the stored secrets under a new one", runSecrets},
		{"connections", "add, list and remove GitLab connections beside GITLAB_URL's", runConnections},
		{"migrate", "apply database migrations (--from/--to: copy a history into another database)", runMigrate},
		{"sim", "run the GitLab simulator", runSim},
		{"export", "write events with their timelines as NDJSON or CSV (a file or standard output)", runExport},
		{"import", "load an NDJSON export, or days of the S3 export, under the ordering rule", runImport},
		{"demo", "run the simulator and labtrail together, to look around", runDemo},
		{"ci", "report a deployment to labtrail from a GitLab CI job (ci report; ci template prints the CI template)", runCI},
		{"digest", "make the summary of the last day or week and send it to Slack, a webhook or stdout", runDigest},
		{"version", "print the version", func(_ context.Context, _ []string, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "labtrail", version)
			return nil
		}},
	}
}

var version = "dev"

func usage(w io.Writer) {
	fmt.Fprintln(w, "labtrail keeps a complete history of what changes in your GitLab projects.")
	fmt.Fprintln(w, "\nUsage: labtrail <command> [flags]   (labtrail <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nSettings come from the environment (and a .env file in the working directory); flags override them.")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if err := loadDotEnv(".env"); err != nil {
		fmt.Fprintln(stderr, "labtrail:", err)
		return 1
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintln(stderr, "labtrail "+c.name+":", err)
			if errors.Is(err, gitlab.ErrUnauthorized) {
				// The library names no setting; this is where settings are known.
				fmt.Fprintln(stderr, "(the token is GITLAB_TOKEN, read from the environment or .env)")
			}
			return 1
		}
	}
	fmt.Fprintf(stderr, "labtrail: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// newFlagSet returns a flag set whose parse errors are usage errors.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: labtrail %s\n\n", synopsis)
		printFlags(stderr, fs)
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
