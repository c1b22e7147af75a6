package main

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

const (
	testRegion  = "eu-west-1"
	testAccount = "123456789012"
	testKeyArn  = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	testURL     = "https://abcdefghij.lambda-url.eu-west-1.on.aws/"
)

// mocks stands in for the AWS provider: it records every resource the
// program declares with its inputs, and answers the two lookups (SSM
// parameters, the KMS key) as AWS would, or not at all for the parameters
// named in missing.
type mocks struct {
	mu        sync.Mutex
	resources map[string]mockResource // by logical name
	keyAsked  []string
	missing   map[string]bool
}

type mockResource struct {
	Type   string
	Inputs resource.PropertyMap
}

func arn(service, res string) string {
	return fmt.Sprintf("arn:aws:%s:%s:%s:%s", service, testRegion, testAccount, res)
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.resources[args.Name]; dup {
		return "", nil, fmt.Errorf("resource %s declared twice", args.Name)
	}
	m.resources[args.Name] = mockResource{Type: args.TypeToken, Inputs: args.Inputs}
	out := args.Inputs.Copy()
	name := args.Name + "-a1b2c3" // Pulumi's auto-naming, when the program names nothing
	if v, ok := args.Inputs["name"]; ok && v.IsString() {
		name = v.StringValue()
	}
	out["name"] = resource.NewStringProperty(name)
	switch args.TypeToken {
	case "aws:dynamodb/table:Table":
		out["arn"] = resource.NewStringProperty(arn("dynamodb", "table/"+name))
	case "aws:cloudwatch/logGroup:LogGroup":
		out["arn"] = resource.NewStringProperty(arn("logs", "log-group:"+name))
	case "aws:iam/role:Role":
		out["arn"] = resource.NewStringProperty("arn:aws:iam::" + testAccount + ":role/" + name)
	case "aws:lambda/function:Function":
		out["arn"] = resource.NewStringProperty(arn("lambda", "function:"+name))
	case "aws:cloudwatch/eventRule:EventRule":
		out["arn"] = resource.NewStringProperty(arn("events", "rule/"+name))
	case "aws:lambda/functionUrl:FunctionUrl":
		out["functionUrl"] = resource.NewStringProperty(testURL)
	}
	return name + "-id", out, nil
}

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch args.Token {
	case "aws:ssm/getParameter:getParameter":
		name := args.Args["name"].StringValue()
		if m.missing[name] {
			return nil, fmt.Errorf("reading SSM Parameter (%s): ParameterNotFound", name)
		}
		if d, ok := args.Args["withDecryption"]; !ok || d.BoolValue() {
			return nil, fmt.Errorf("parameter %s looked up with decryption: the program needs only its ARN", name)
		}
		return resource.NewPropertyMapFromMap(map[string]any{
			"arn": arn("ssm", "parameter"+name), "name": name, "type": "SecureString", "value": "AQICAH-encrypted",
		}), nil
	case "aws:kms/getKey:getKey":
		m.keyAsked = append(m.keyAsked, args.Args["keyId"].StringValue())
		return resource.NewPropertyMapFromMap(map[string]any{"arn": testKeyArn, "id": "1234abcd-12ab-34cd-56ef-1234567890ab"}), nil
	}
	return nil, fmt.Errorf("unexpected call %s", args.Token)
}

// outputs are the stack's outputs, read once they are known.
type outputs struct{ table, function, functionURL, webhook, api string }

// elfHeader is the 64-byte header of an ELF64 little-endian executable for
// machine (183 arm64, 62 x86-64): enough for debug/elf to read its machine.
func elfHeader(machine elfMachine) []byte {
	b := make([]byte, 64)
	copy(b, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(b[16:], 2) // ET_EXEC
	binary.LittleEndian.PutUint16(b[18:], uint16(machine))
	binary.LittleEndian.PutUint32(b[20:], 1)
	binary.LittleEndian.PutUint16(b[52:], 64)
	binary.LittleEndian.PutUint16(b[54:], 56)
	binary.LittleEndian.PutUint16(b[58:], 64)
	return append(b, "the rest of the binary"...)
}

type elfMachine uint16

const (
	arm64 elfMachine = 183
	amd64 elfMachine = 62
)

// deploy runs the program against the mocks in a fresh directory (the zip
// it writes lands there) with cfg as the stack's configuration, keys
// without the "labtrail:" namespace. A bootstrap binary for arm64 is put at
// the default path unless cfg names one.
func deploy(t *testing.T, cfg map[string]string, missing ...string) (*mocks, outputs, error) {
	t.Helper()
	dir := t.TempDir()
	prog := filepath.Join(dir, "deploy", "aws")
	if err := os.MkdirAll(prog, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), elfHeader(arm64), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(prog)
	m := &mocks{resources: map[string]mockResource{}, missing: map[string]bool{}}
	for _, p := range missing {
		m.missing[p] = true
	}
	config := map[string]string{}
	for k, v := range cfg {
		config["labtrail:"+k] = v
	}
	var (
		mu  sync.Mutex
		out outputs
	)
	set := func(dst *string) func(string) string {
		return func(v string) string { mu.Lock(); *dst = v; mu.Unlock(); return v }
	}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		st, err := program(ctx)
		if err != nil {
			return err
		}
		st.TableName.ApplyT(set(&out.table))
		st.FunctionName.ApplyT(set(&out.function))
		st.FunctionURL.ApplyT(set(&out.functionURL))
		st.WebhookURL.ApplyT(set(&out.webhook))
		st.APIURL.ApplyT(set(&out.api))
		return nil
	}, pulumi.WithMocks("labtrail", "dev", m), func(info *pulumi.RunInfo) { info.Config = config })
	mu.Lock()
	defer mu.Unlock()
	return m, out, err
}

// get returns the one resource of the given type, failing if there is not
// exactly one.
func (m *mocks) get(t *testing.T, typ string) (string, map[string]any) {
	t.Helper()
	var names []string
	for name, r := range m.resources {
		if r.Type == typ {
			names = append(names, name)
		}
	}
	if len(names) != 1 {
		t.Fatalf("%d resources of type %s (%v); want 1", len(names), typ, names)
	}
	return names[0], m.resources[names[0]].Inputs.Mappable()
}

func (m *mocks) inputs(t *testing.T, name string) map[string]any {
	t.Helper()
	r, ok := m.resources[name]
	if !ok {
		t.Fatalf("no resource %q among %v", name, m.names())
	}
	return r.Inputs.Mappable()
}

func (m *mocks) names() []string {
	var out []string
	for n := range m.resources {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Errorf("%s = %s; want %s", what, g, w)
	}
}

func TestDefaults(t *testing.T) {
	m, out, err := deploy(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "resources", m.names(), []string{"function", "logs", "policy", "role", "schedule", "schedule-invoke", "schedule-retries", "schedule-target", "table", "url", "url-invoke"})

	_, table := m.get(t, "aws:dynamodb/table:Table")
	equal(t, "table name", table["name"], "labtrail-dev")
	equal(t, "billingMode", table["billingMode"], "PAY_PER_REQUEST")
	equal(t, "ttl", table["ttl"], map[string]any{"attributeName": "ttl", "enabled": true})
	equal(t, "pointInTimeRecovery", table["pointInTimeRecovery"], map[string]any{"enabled": true})

	_, fn := m.get(t, "aws:lambda/function:Function")
	equal(t, "function name", fn["name"], "labtrail-dev")
	equal(t, "runtime", fn["runtime"], "provided.al2023")
	equal(t, "architectures", fn["architectures"], []string{"arm64"})
	equal(t, "handler", fn["handler"], "bootstrap")
	equal(t, "memorySize", fn["memorySize"], 256)
	equal(t, "timeout", fn["timeout"], 300)
	equal(t, "role", fn["role"], "arn:aws:iam::123456789012:role/role-a1b2c3")
	equal(t, "environment", fn["environment"], map[string]any{"variables": map[string]any{
		"LABTRAIL_DYNAMODB_TABLE":               "labtrail-dev",
		"LABTRAIL_SSM_TOKEN_PARAMETER":          "/labtrail/gitlab/token",
		"LABTRAIL_SSM_WEBHOOK_SECRET_PARAMETER": "/labtrail/gitlab/webhook-secret",
		"LABTRAIL_SSM_API_TOKEN_PARAMETER":      "/labtrail/api/token",
		"GITLAB_URL":                            "https://gitlab.com",
		"LABTRAIL_RETENTION":                    "720h",
	}})
	equal(t, "loggingConfig", fn["loggingConfig"], map[string]any{"logFormat": "Text", "logGroup": "/aws/lambda/labtrail-dev"})
	code := m.resources["function"].Inputs["code"]
	if !code.IsArchive() || code.ArchiveValue().Path != filepath.Join(".build", "bootstrap.zip") {
		t.Errorf("code = %v; want the archive .build/bootstrap.zip", code)
	}
	checkZip(t, filepath.Join(".build", "bootstrap.zip"), elfHeader(arm64))

	_, logs := m.get(t, "aws:cloudwatch/logGroup:LogGroup")
	equal(t, "log group", logs, map[string]any{"name": "/aws/lambda/labtrail-dev", "retentionInDays": 30,
		"tags": map[string]any{"app": "labtrail", "stack": "dev"}})

	_, rule := m.get(t, "aws:cloudwatch/eventRule:EventRule")
	equal(t, "scheduleExpression", rule["scheduleExpression"], "rate(5 minutes)")
	_, target := m.get(t, "aws:cloudwatch/eventTarget:EventTarget")
	equal(t, "target rule", target["rule"], "schedule-a1b2c3")
	equal(t, "target arn", target["arn"], arn("lambda", "function:labtrail-dev"))
	equal(t, "schedule permission", m.inputs(t, "schedule-invoke"), map[string]any{
		"action": "lambda:InvokeFunction", "function": "labtrail-dev",
		"principal": "events.amazonaws.com", "sourceArn": arn("events", "rule/schedule-a1b2c3")})

	equal(t, "async invoke config", m.inputs(t, "schedule-retries"), map[string]any{"functionName": "labtrail-dev", "maximumRetryAttempts": 0})

	_, url := m.get(t, "aws:lambda/functionUrl:FunctionUrl")
	equal(t, "function URL", url, map[string]any{"authorizationType": "NONE", "functionName": "labtrail-dev"})
	equal(t, "URL permission", m.inputs(t, "url-invoke"), map[string]any{
		"action": "lambda:InvokeFunctionUrl", "function": "labtrail-dev",
		"principal": "*", "functionUrlAuthType": "NONE"})

	_, role := m.get(t, "aws:iam/role:Role")
	var assume policyDocument
	if err := json.Unmarshal([]byte(role["assumeRolePolicy"].(string)), &assume); err != nil {
		t.Fatal(err)
	}
	equal(t, "assume role policy", assume, policyDocument{Version: "2012-10-17", Statement: []policyStatement{{
		Effect: "Allow", Principal: map[string]string{"Service": "lambda.amazonaws.com"}, Action: []string{"sts:AssumeRole"}}}})
	if role["managedPolicyArns"] != nil || role["inlinePolicies"] != nil {
		t.Errorf("role has other policies: %v", role)
	}

	checkPolicy(t, m, "labtrail-dev", []string{"/labtrail/gitlab/token", "/labtrail/gitlab/webhook-secret", "/labtrail/api/token"}, "eu-west-1")
	equal(t, "KMS key looked up", m.keyAsked, []string{"alias/aws/ssm"})

	equal(t, "outputs", []string{out.table, out.function, out.functionURL, out.webhook, out.api}, []string{
		"labtrail-dev", "labtrail-dev", testURL, testURL + "api/v1/webhooks/gitlab", testURL + "api/v1/"})
}

// checkPolicy reads the role's one inline policy and checks that it grants
// exactly the listed actions, each on exactly the named resources: no
// wildcard resource but the table's own indexes and the log group's streams.
func checkPolicy(t *testing.T, m *mocks, name string, params []string, region string) {
	t.Helper()
	_, rp := m.get(t, "aws:iam/rolePolicy:RolePolicy")
	equal(t, "policy role", rp["role"], "role-a1b2c3")
	var doc policyDocument
	if err := json.Unmarshal([]byte(rp["policy"].(string)), &doc); err != nil {
		t.Fatalf("policy is not JSON: %v\n%s", err, rp["policy"])
	}
	tableArn := arn("dynamodb", "table/"+name)
	var paramArns []string
	for _, p := range params {
		paramArns = append(paramArns, arn("ssm", "parameter"+p))
	}
	want := map[string]policyStatement{
		"dynamodb": {Action: dynamoDBActions, Resource: []string{tableArn, tableArn + "/index/*"}},
		"ssm":      {Action: []string{"ssm:GetParameters"}, Resource: paramArns},
		"kms": {Action: []string{"kms:Decrypt"}, Resource: []string{testKeyArn},
			Condition: map[string]map[string]string{"StringEquals": {"kms:ViaService": "ssm." + region + ".amazonaws.com"}}},
		"logs": {Action: []string{"logs:CreateLogStream", "logs:PutLogEvents"}, Resource: []string{arn("logs", "log-group:/aws/lambda/"+name) + ":*"}},
	}
	seen := map[string]bool{}
	for _, st := range doc.Statement {
		if st.Effect != "Allow" || st.Principal != nil {
			t.Errorf("statement %s: effect %q, principal %v", st.Sid, st.Effect, st.Principal)
		}
		service, _, _ := strings.Cut(st.Action[0], ":")
		for _, a := range st.Action {
			if s, op, _ := strings.Cut(a, ":"); s != service || strings.Contains(op, "*") {
				t.Errorf("statement %s mixes services or wildcards actions: %v", st.Sid, st.Action)
			}
		}
		w, ok := want[service]
		if !ok || seen[service] {
			t.Errorf("unexpected statement %+v", st)
			continue
		}
		seen[service] = true
		equal(t, service+" actions", st.Action, w.Action)
		equal(t, service+" resources", st.Resource, w.Resource)
		equal(t, service+" condition", st.Condition, w.Condition)
		for _, r := range st.Resource {
			if r == "*" || strings.Contains(strings.TrimSuffix(strings.TrimSuffix(r, "/index/*"), ":*"), "*") {
				t.Errorf("%s statement names a wildcard resource %q", service, r)
			}
		}
	}
	if len(seen) != len(want) {
		t.Errorf("policy has statements for %v; want dynamodb, ssm, kms and logs", seen)
	}
}

// checkZip checks the deployment package: one file, bootstrap, executable,
// holding the binary.
func checkZip(t *testing.T, path string, bin []byte) {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != 1 || zr.File[0].Name != "bootstrap" {
		t.Fatalf("zip holds %v; want just bootstrap", zr.File)
	}
	if mode := zr.File[0].Mode(); mode.Perm() != 0o755 || !mode.IsRegular() {
		t.Errorf("bootstrap's mode in the zip is %v; want -rwxr-xr-x (Lambda execs it)", mode)
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), bin) {
		t.Errorf("zip's bootstrap differs from the binary")
	}
}

func TestTable(t *testing.T) {
	m, _, err := deploy(t, map[string]string{"name": "team-labtrail", "pointInTimeRecovery": "false"})
	if err != nil {
		t.Fatal(err)
	}
	_, table := m.get(t, "aws:dynamodb/table:Table")
	equal(t, "table name", table["name"], "team-labtrail")
	equal(t, "hashKey", table["hashKey"], "pk")
	equal(t, "rangeKey", table["rangeKey"], "sk")
	equal(t, "pointInTimeRecovery", table["pointInTimeRecovery"], map[string]any{"enabled": false})
	// Every key attribute is defined once as a string, and nothing else is
	// (DynamoDB refuses attribute definitions no key uses).
	keys := map[string]bool{"pk": true, "sk": true}
	var gsiNames []string
	for _, g := range table["globalSecondaryIndexes"].([]any) {
		g := g.(map[string]any)
		equal(t, "projection of "+g["name"].(string), g["projectionType"], "ALL")
		if g["readCapacity"] != nil || g["writeCapacity"] != nil {
			t.Errorf("index %s has provisioned capacity on an on-demand table", g["name"])
		}
		keys[g["hashKey"].(string)], keys[g["rangeKey"].(string)] = true, true
		gsiNames = append(gsiNames, g["name"].(string))
	}
	var want []string
	for _, ix := range tableIndexes {
		want = append(want, ix.Name)
	}
	equal(t, "indexes", gsiNames, want)
	var attrs []string
	for _, a := range table["attributes"].([]any) {
		a := a.(map[string]any)
		equal(t, "type of "+a["name"].(string), a["type"], "S")
		attrs = append(attrs, a["name"].(string))
	}
	var wantAttrs []string
	for k := range keys {
		wantAttrs = append(wantAttrs, k)
	}
	slices.Sort(attrs)
	slices.Sort(wantAttrs)
	equal(t, "attributes", attrs, wantAttrs)
}

func TestConfigured(t *testing.T) {
	m, out, err := deploy(t, map[string]string{
		"name":                   "labtrail-prod",
		"schedule":               "rate(1 hour)",
		"memory":                 "512",
		"timeout":                "90s",
		"gitlabUrl":              "https://gitlab.example.com",
		"repos":                  "team/api,team/web",
		"groups":                 "platform",
		"retention":              "2160h,job=168h",
		"tokenParameter":         "/prod/gitlab/token",
		"webhookSecretParameter": "/prod/gitlab/hook",
		"apiTokenParameter":      "/prod/api/token",
		"kmsKey":                 "alias/labtrail",
		"logRetentionDays":       "90",
		"env":                    `{"LABTRAIL_LOG_LEVEL":"debug","BRANCHES":"main,release"}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, rule := m.get(t, "aws:cloudwatch/eventRule:EventRule")
	equal(t, "scheduleExpression", rule["scheduleExpression"], "rate(1 hour)")
	_, fn := m.get(t, "aws:lambda/function:Function")
	equal(t, "memorySize", fn["memorySize"], 512)
	equal(t, "timeout", fn["timeout"], 90)
	equal(t, "environment", fn["environment"], map[string]any{"variables": map[string]any{
		"LABTRAIL_DYNAMODB_TABLE":               "labtrail-prod",
		"LABTRAIL_SSM_TOKEN_PARAMETER":          "/prod/gitlab/token",
		"LABTRAIL_SSM_WEBHOOK_SECRET_PARAMETER": "/prod/gitlab/hook",
		"LABTRAIL_SSM_API_TOKEN_PARAMETER":      "/prod/api/token",
		"GITLAB_URL":                            "https://gitlab.example.com",
		"REPOS":                                 "team/api,team/web",
		"GROUPS":                                "platform",
		"LABTRAIL_RETENTION":                    "2160h,job=168h",
		"LABTRAIL_LOG_LEVEL":                    "debug",
		"BRANCHES":                              "main,release",
	}})
	_, logs := m.get(t, "aws:cloudwatch/logGroup:LogGroup")
	equal(t, "log retention", logs["retentionInDays"], 90)
	checkPolicy(t, m, "labtrail-prod", []string{"/prod/gitlab/token", "/prod/gitlab/hook", "/prod/api/token"}, "eu-west-1")
	equal(t, "KMS key looked up", m.keyAsked, []string{"alias/labtrail"})
	equal(t, "function output", out.function, "labtrail-prod")
}

// A cron schedule is taken as it is; one parameter named twice is granted
// once.
func TestCronScheduleAndSharedParameter(t *testing.T) {
	m, _, err := deploy(t, map[string]string{
		"schedule":          "cron(0/15 8-18 ? * MON-FRI *)",
		"apiTokenParameter": "/labtrail/gitlab/webhook-secret",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, rule := m.get(t, "aws:cloudwatch/eventRule:EventRule")
	equal(t, "scheduleExpression", rule["scheduleExpression"], "cron(0/15 8-18 ? * MON-FRI *)")
	checkPolicy(t, m, "labtrail-dev", []string{"/labtrail/gitlab/token", "/labtrail/gitlab/webhook-secret"}, "eu-west-1")
}

func TestBadConfiguration(t *testing.T) {
	for _, tc := range []struct {
		key, value string
	}{
		{"schedule", "every 5 minutes"},
		{"schedule", "rate(5 minute)"},
		{"schedule", "rate(1 hours)"},
		{"schedule", "rate(0 minutes)"},
		{"schedule", "cron(* * * *)"},
		{"memory", "64"},
		{"memory", "big"},
		{"timeout", "20m"},
		{"timeout", "1.5s"},
		{"timeout", "0"},
		{"retention", "30d"},
		{"retention", "-1h"},
		{"retention", "720h,168h"},
		{"retention", "720h,job=0s"},
		{"retention", "720h,=1h"},
		{"gitlabUrl", "gitlab.com"},
		{"tokenParameter", "labtrail/gitlab/token"},
		{"webhookSecretParameter", "/with space"},
		{"apiTokenParameter", "/api/token*"},
		{"name", "labtrail.dev"},
		{"logRetentionDays", "31"},
		{"pointInTimeRecovery", "sometimes"},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			m, _, err := deploy(t, map[string]string{tc.key: tc.value})
			if err == nil || !strings.Contains(err.Error(), "labtrail:"+tc.key) || !strings.Contains(err.Error(), tc.value) {
				t.Fatalf("error %v; want one naming labtrail:%s and %q", err, tc.key, tc.value)
			}
			if len(m.resources) != 0 {
				t.Errorf("declared %v before refusing the configuration", m.names())
			}
		})
	}
}

// A parameter not yet put into SSM fails before anything is created, with
// its name in the error.
func TestMissingParameter(t *testing.T) {
	m, _, err := deploy(t, nil, "/labtrail/api/token")
	if err == nil || !strings.Contains(err.Error(), "/labtrail/api/token") {
		t.Fatalf("error %v; want one naming /labtrail/api/token", err)
	}
	if len(m.resources) != 0 {
		t.Errorf("declared %v despite the missing parameter", m.names())
	}
}

func TestBootstrap(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		_, _, err := deploy(t, map[string]string{"bootstrap": "../../no-such-bootstrap"})
		if err == nil || !strings.Contains(err.Error(), "make lambda") {
			t.Fatalf("error %v; want one that says to run make lambda", err)
		}
	})
	t.Run("not arm64", func(t *testing.T) {
		dir := t.TempDir()
		bin := filepath.Join(dir, "bootstrap")
		if err := os.WriteFile(bin, elfHeader(amd64), 0o755); err != nil {
			t.Fatal(err)
		}
		_, _, err := deploy(t, map[string]string{"bootstrap": bin})
		if err == nil || !strings.Contains(err.Error(), "X86_64, not arm64") {
			t.Fatalf("error %v; want one saying the binary is for X86_64", err)
		}
	})
	t.Run("not an executable", func(t *testing.T) {
		dir := t.TempDir()
		bin := filepath.Join(dir, "bootstrap")
		if err := os.WriteFile(bin, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, _, err := deploy(t, map[string]string{"bootstrap": bin})
		if err == nil || !strings.Contains(err.Error(), "not a Linux executable") {
			t.Fatalf("error %v; want one saying it is not a Linux executable", err)
		}
	})
	t.Run("zip given", func(t *testing.T) {
		zipPath := filepath.Join(t.TempDir(), "bootstrap.zip")
		data, err := zipBootstrap(elfHeader(arm64))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(zipPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, _, err := deploy(t, map[string]string{"bootstrap": zipPath})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.resources["function"].Inputs["code"].ArchiveValue().Path; got != zipPath {
			t.Errorf("code = %s; want the zip given, %s", got, zipPath)
		}
		if _, err := os.Stat(".build"); err == nil {
			t.Errorf("wrote .build/ although a zip was given")
		}
	})
	// The same binary gives the same zip, byte for byte, so Pulumi sees no
	// change to deploy; a new binary gives a new one.
	t.Run("deterministic", func(t *testing.T) {
		a, _ := zipBootstrap(elfHeader(arm64))
		b, _ := zipBootstrap(elfHeader(arm64))
		c, _ := zipBootstrap(append(elfHeader(arm64), 1))
		if !bytes.Equal(a, b) || bytes.Equal(a, c) {
			t.Errorf("zips: same binary equal %v, different binary equal %v", bytes.Equal(a, b), bytes.Equal(a, c))
		}
	})
}

// labtrail:env passes more of labtrail's settings, but no secret (those
// belong in SSM), nothing of Lambda's own, and nothing the program sets.
func TestBadEnv(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{`{"GITLAB_TOKEN":"glpat-x"}`, "labtrail:env.GITLAB_TOKEN holds a secret"},
		{`{"LABTRAIL_WEBHOOK_SECRET":"s"}`, "labtrail:env.LABTRAIL_WEBHOOK_SECRET holds a secret"},
		{`{"AWS_REGION":"us-east-1"}`, "labtrail:env.AWS_REGION: not a variable"},
		{`{"log_level":"debug"}`, "labtrail:env.log_level: not a variable"},
		{`{"REPOS":"a/b"}`, "labtrail:env.REPOS: the program sets REPOS"},
		{`{"LABTRAIL_DYNAMODB_TABLE":"other"}`, "labtrail:env.LABTRAIL_DYNAMODB_TABLE: the program sets"},
		{`["LABTRAIL_LOG_LEVEL"]`, "labtrail:env: "},
	} {
		t.Run(tc.env, func(t *testing.T) {
			m, _, err := deploy(t, map[string]string{"env": tc.env})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want one with %q", err, tc.want)
			}
			if len(m.resources) != 0 {
				t.Errorf("declared %v before refusing the configuration", m.names())
			}
		})
	}
}
