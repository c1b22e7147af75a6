package main

import (
	"cmp"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/serverless"
)

// The Lambda function (internal/serverless) reads labtrail sync's
// environment with its own small reader, since it cannot import this
// command. Set both from the same environment, they must end up with the
// same GitLab, selection and sweep settings, defaults included: a setting
// renamed, re-defaulted or parsed differently here fails this test.
func TestLambdaReadsTheSettingsSyncReads(t *testing.T) {
	vars := []string{"GITLAB_URL", "GITLAB_TOKEN", "REPOS", "GROUPS", "LABTRAIL_GROUPS", "BRANCHES",
		"LABTRAIL_REQUESTS_PER_MINUTE", "LABTRAIL_CONCURRENCY", "LABTRAIL_HTTP_TIMEOUT", "LABTRAIL_GRAPHQL",
		"LABTRAIL_MAX_PROJECTS", "LABTRAIL_INCLUDE_ARCHIVED", "LABTRAIL_FULL_SWEEP", "LABTRAIL_SWEEP",
		"LABTRAIL_WEBHOOK_SECRET", "LABTRAIL_WEBHOOK_SIGNING_SECRET"}
	for _, env := range []map[string]string{
		{}, // every default
		{"GITLAB_URL": "https://gitlab.example.com/", "GITLAB_TOKEN": "glpat-x", "REPOS": " a/b, c/d ,", "GROUPS": "old",
			"BRANCHES": "main,release", "LABTRAIL_REQUESTS_PER_MINUTE": "120", "LABTRAIL_CONCURRENCY": "2",
			"LABTRAIL_HTTP_TIMEOUT": "45s", "LABTRAIL_GRAPHQL": "OFF", "LABTRAIL_MAX_PROJECTS": "7",
			"LABTRAIL_INCLUDE_ARCHIVED": "true", "LABTRAIL_FULL_SWEEP": "0", "LABTRAIL_SWEEP": "0",
			"LABTRAIL_WEBHOOK_SECRET": "s1,s2", "LABTRAIL_WEBHOOK_SIGNING_SECRET": "whsec_a"},
		{"LABTRAIL_GROUPS": "acme,tools", "GROUPS": "old", "LABTRAIL_FULL_SWEEP": "30m", "LABTRAIL_SWEEP": "5m"},
	} {
		for _, k := range vars {
			t.Setenv(k, env[k])
			if _, ok := env[k]; !ok {
				os.Unsetenv(k)
			}
		}
		fs := newFlagSet("sync", "sync", io.Discard)
		build := useSettings(fs, gitlabSettings, selectionSettings, syncSettings, webhookSettings)
		if err := parse(fs, nil); err != nil {
			t.Fatal(err)
		}
		want, err := build()
		if err != nil {
			t.Fatalf("%v: sync's settings: %v", env, err)
		}
		got, err := serverless.ConfigFromEnv(os.LookupEnv)
		if err != nil {
			t.Fatalf("%v: the function's settings: %v", env, err)
		}
		sweep := func(d, def time.Duration) time.Duration { return cmp.Or(d, def) }
		for _, c := range []struct {
			name      string
			got, want any
		}{
			{"GitLab URL", got.GitLab.URL, want.GitLabURL},
			{"token", got.GitLab.Token, want.Token},
			{"repos", got.Selection.Repos, want.Repos},
			{"groups", got.Selection.Groups, want.Groups},
			{"branches", got.Branches, want.Branches},
			{"requests per minute", cmp.Or(got.GitLab.RequestsPerMinute, gitlab.DefaultRequestsPerMinute), want.RequestsPerMinute},
			{"concurrency", cmp.Or(got.GitLab.Concurrency, gitlab.DefaultConcurrency), want.Concurrency},
			{"HTTP timeout", cmp.Or(got.GitLab.Timeout, gitlab.DefaultTimeout), want.HTTPTimeout},
			{"GraphQL", cmp.Or(got.GitLab.GraphQL, gitlab.GraphQLAuto), want.GraphQL},
			{"max projects", cmp.Or(got.Selection.Max, gitlab.DefaultMaxProjects), want.MaxProjects},
			{"archived", got.Selection.IncludeArchived, want.IncludeArchived},
			{"full sweep", sweep(got.FullSweep, ingest.DefaultFullSweep), want.FullSweep},
			{"change detection sweep", sweep(got.Sweep, ingest.DefaultSweep), want.Sweep},
			{"webhook secrets", got.WebhookSecrets, want.WebhookSecrets},
			{"signing secrets", got.SigningSecrets, want.SigningSecrets},
		} {
			if gs, ok := c.got.([]string); ok {
				if ws := c.want.([]string); !slices.Equal(gs, ws) {
					t.Errorf("%v: %s: the function reads %q, sync %q", env, c.name, gs, ws)
				}
				continue
			}
			if c.got != c.want {
				t.Errorf("%v: %s: the function reads %v, sync %v", env, c.name, c.got, c.want)
			}
		}
	}
}
