package serverless_test

import (
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/serverless"
)

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestConfigFromEnv(t *testing.T) {
	c, err := serverless.ConfigFromEnv(lookupIn(map[string]string{
		"REPOS": " team/api, ,team/web ", "GROUPS": "old", "LABTRAIL_GROUPS": "platform", "LABTRAIL_FULL_SWEEP": "0",
		"LABTRAIL_SWEEP": "30m", "LABTRAIL_RETENTION": "720h,job=168h", "LABTRAIL_SSM_WEBHOOK_SECRET_PARAMETER": "",
		"LABTRAIL_DYNAMODB_TABLE": "labtrail",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Selection.Repos, "|") != "team/api|team/web" || strings.Join(c.Selection.Groups, "|") != "platform" {
		t.Errorf("selection %+v", c.Selection)
	}
	if c.FullSweep != -1 || c.Sweep != 30*time.Minute || c.Table != "labtrail" {
		t.Errorf("full sweep %s, sweep %s, table %q", c.FullSweep, c.Sweep, c.Table)
	}
	if c.Retention.All != 720*time.Hour || c.Retention.Kinds[change.KindJob] != 168*time.Hour {
		t.Errorf("retention %+v", c.Retention)
	}
	// Unset: the core's own defaults (zero here) and the default parameters;
	// a parameter variable set empty is off.
	if c.GitLab.RequestsPerMinute != 0 || c.GitLab.Timeout != 0 || c.Selection.Max != 0 || c.GitLab.URL != "https://gitlab.com" {
		t.Errorf("defaults %+v", c.GitLab)
	}
	if c.TokenParameter != serverless.DefaultTokenParameter || c.WebhookSecretParameter != "" || c.APITokenParameter != serverless.DefaultAPITokenParameter {
		t.Errorf("parameters %q %q %q", c.TokenParameter, c.WebhookSecretParameter, c.APITokenParameter)
	}
	for k, v := range map[string]string{
		"LABTRAIL_REQUESTS_PER_MINUTE": "many", "LABTRAIL_CONCURRENCY": "0", "LABTRAIL_HTTP_TIMEOUT": "0",
		"LABTRAIL_FULL_SWEEP": "sometimes", "LABTRAIL_GRAPHQL": "maybe", "LABTRAIL_INCLUDE_ARCHIVED": "perhaps",
		"LABTRAIL_LOG_LEVEL": "loud", "LABTRAIL_RETENTION": "forever", "LABTRAIL_SYNC_MARGIN": "-5s",
	} {
		_, err := serverless.ConfigFromEnv(lookupIn(map[string]string{k: v}))
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q: %v", k, v, err)
		}
	}
}
