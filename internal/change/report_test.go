package change

import (
	"testing"
	"time"
)

func TestReportedIDsParse(t *testing.T) {
	for _, c := range []struct {
		id   string
		kind Kind
		ok   bool
	}{
		{ReportedDeploymentID(42, "production", "9001"), KindDeployment, true},
		{ReportedDeploymentID(42, "review/feature-x", "abcdef1"), KindDeployment, true},
		{ReportedEnvironmentID(42, "review/feature-x"), KindEnvironment, true},
		{"deployment-42-ext-production", KindDeployment, false},     // no key
		{"deployment-42-ext-production-xyz", KindDeployment, false}, // key neither job id nor sha
		{"deployment-42-ext--9001", KindDeployment, false},          // no environment
		{"environment-42-ext-", KindEnvironment, false},             // no name
		{"deployment-42-ext-prod\x01-9001", KindDeployment, false},  // control character
		{DeploymentID(42, 7), KindDeployment, true},
	} {
		p, err := ParseID(c.id)
		if (err == nil) != c.ok || (c.ok && (p.Kind != c.kind || p.ProjectID != 42)) {
			t.Errorf("ParseID(%q) = %+v, %v; want ok %v", c.id, p, err, c.ok)
		}
	}
}

func TestGuessTier(t *testing.T) {
	for name, want := range map[string]string{
		"production": "production", "prod-eu": "production", "live": "production",
		"staging": "staging", "pre-prod": "staging", "nonprod": "staging",
		"test": "testing", "qa": "testing", "review/feature-x": "development", "dev": "development",
		"customer-portal": "other",
	} {
		if got := GuessTier(name); got != want {
			t.Errorf("GuessTier(%q) = %s, want %s", name, got, want)
		}
	}
}

func TestReportEvents(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	r := DeploymentReport{Project: "group/app", Environment: "production", SHA: "ABCDEF1", Status: "failed", JobID: 5}
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	d, env := r.Events(42, "group/app", now)
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := CheckEventID(d); err != nil {
		t.Error(err)
	}
	if err := CheckEventID(env); err != nil {
		t.Error(err)
	}
	// Without times a final report is dated when received.
	if d.SHA != "abcdef1" || !d.UpdatedAt.Equal(now) || d.State != "failed" || d.Attrs["finished_at"] != now.Format(time.RFC3339Nano) {
		t.Errorf("event %+v", d)
	}
	if ts := d.SortedTransitions(); len(ts) != 2 || ts[len(ts)-1].State != "failed" {
		t.Errorf("transitions %+v", ts)
	}
}
