package deploy_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/labtrail/labtrail/internal/store/postgres/pgtest"
)

// podEnv is a container's environment as Kubernetes would build it from
// the manifests: the image's ENV, then envFrom (the ConfigMap), then env,
// with secretKeyRefs read from secret.
func podEnv(t *testing.T, m manifests, c corev1.Container, secret map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil || from.ConfigMapRef.Name != m.configMap.Name {
			t.Fatalf("container %s: envFrom %+v is not the ConfigMap", c.Name, from)
		}
		for k, v := range m.configMap.Data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			v, ok := secret[e.ValueFrom.SecretKeyRef.Key]
			if !ok {
				t.Fatalf("container %s: %s from missing secret key %s", c.Name, e.Name, e.ValueFrom.SecretKeyRef.Key)
			}
			env[e.Name] = v
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		default:
			t.Fatalf("container %s: %s: only values and secretKeyRefs are understood here", c.Name, e.Name)
		}
	}
	return env
}

// TestPodsOnPostgres plays the Deployment on this machine: the init
// container's command, then three replicas of the main container's, each
// with the environment the manifests give it (the Secret's LABTRAIL_DB
// pointing at a fresh PostgreSQL schema), run from the image's layout as
// its user with nothing writable but /tmp, as readOnlyRootFilesystem
// leaves them. Every replica must become ready, a webhook acknowledged by
// one must be visible through another (one shared database), and each
// must exit cleanly on SIGTERM.
func TestPodsOnPostgres(t *testing.T) {
	dbURL := pgtest.SchemaURL(t)
	m := readManifests(t)
	im := readImage(t)
	bin := builtBinary(t, im)
	root := layOut(t, im, bin, false)
	if os.Geteuid() != 0 {
		t.Log("not root: the data directory stays writable, so the read-only root file system is not enforced")
	}
	pod := m.deployment.Spec.Template.Spec
	app := container(t, pod.Containers, "labtrail")
	const hookSecret = "webhook-secret-podtest"
	secret := map[string]string{"GITLAB_TOKEN": "glpat-podtest", "LABTRAIL_WEBHOOK_SECRET": hookSecret, "LABTRAIL_DB": dbURL}
	run := func(c corev1.Container) map[string]string {
		env := podEnv(t, m, c, secret)
		for k, v := range testEnv() {
			if k != "GITLAB_TOKEN" {
				env[k] = v
			}
		}
		return env
	}

	for _, ic := range pod.InitContainers {
		out, err := inImage(im, root, run(ic), ic.Args...).CombinedOutput()
		if err != nil {
			t.Fatalf("init container %s (labtrail %s): %v\n%s", ic.Name, strings.Join(ic.Args, " "), err, out)
		}
		t.Logf("init container %s: %s", ic.Name, strings.TrimSpace(string(out)))
	}
	replicas := make([]*served, *m.deployment.Spec.Replicas)
	for i := range replicas {
		replicas[i] = startServe(t, inImage(im, root, run(app), app.Args...))
	}
	for i, r := range replicas {
		r.get(t, app.ReadinessProbe.HTTPGet.Path, http.StatusOK)
		r.get(t, app.LivenessProbe.HTTPGet.Path, http.StatusOK)
		t.Logf("replica %d ready on %s", i, r.base)
	}

	body := `{"object_kind":"merge_request","event_type":"merge_request","project":{"id":1,"path_with_namespace":"a/b"},"object_attributes":{"iid":3}}`
	req, _ := http.NewRequest(http.MethodPost, replicas[0].base+"/api/v1/webhooks/gitlab", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Gitlab-Event", "Merge Request Hook")
	req.Header.Set("X-Gitlab-Token", hookSecret)
	req.Header.Set("Idempotency-Key", "podtest-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook to replica 0: %d", resp.StatusCode)
	}
	var page struct {
		Deliveries []struct {
			IdempotencyKey string `json:"idempotency_key"`
		} `json:"deliveries"`
	}
	if err := json.Unmarshal(replicas[len(replicas)-1].get(t, "/api/v1/webhooks/deliveries", http.StatusOK), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Deliveries) != 1 || page.Deliveries[0].IdempotencyKey != "podtest-1" {
		t.Errorf("the last replica lists deliveries %+v; want the one replica 0 acknowledged", page.Deliveries)
	}
	for _, r := range replicas {
		r.stop(t)
	}
	if entries, err := os.ReadDir(root + im.volume); err != nil || len(entries) > 0 {
		t.Errorf("the pods wrote %v into %s (%v); with PostgreSQL they need no data directory", entries, im.volume, err)
	}
}
