package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const k8sDir = "kubernetes"

// kustomization is the part of kustomize's Kustomization labtrail uses.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// manifests are the objects of deploy/kubernetes, each decoded strictly
// into the Kubernetes API's own Go types: an unknown or misspelt field, a
// wrong type or a malformed quantity fails the decode.
type manifests struct {
	files      map[string]string // kind -> file
	deployment appsv1.Deployment
	service    corev1.Service
	secret     corev1.Secret
	configMap  corev1.ConfigMap
	pdb        policyv1.PodDisruptionBudget
	kustomize  kustomization
}

func readManifests(t *testing.T) manifests {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	m := manifests{files: map[string]string{}}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("\n---")) {
			t.Fatalf("%s: one object per file, so kustomization.yaml names each", p)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(b, &tm); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var into any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			into = &m.deployment
		case "v1 Service":
			into = &m.service
		case "v1 Secret":
			into = &m.secret
		case "v1 ConfigMap":
			into = &m.configMap
		case "policy/v1 PodDisruptionBudget":
			into = &m.pdb
		case "kustomize.config.k8s.io/v1beta1 Kustomization":
			into = &m.kustomize
		default:
			t.Fatalf("%s: unexpected %s %s", p, tm.APIVersion, tm.Kind)
		}
		if prev, dup := m.files[tm.Kind]; dup {
			t.Fatalf("%s and %s are both a %s", prev, p, tm.Kind)
		}
		m.files[tm.Kind] = filepath.Base(p)
		if err := yaml.UnmarshalStrict(b, into); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	for _, k := range []string{"Deployment", "Service", "Secret", "ConfigMap", "PodDisruptionBudget", "Kustomization"} {
		if m.files[k] == "" {
			t.Fatalf("%s holds no %s", k8sDir, k)
		}
	}
	return m
}

func container(t *testing.T, cs []corev1.Container, name string) corev1.Container {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// portNumber resolves a probe's or Service's target port against c.
func portNumber(c corev1.Container, p intstr.IntOrString) int32 {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	return 0
}

// TestKubernetesManifests checks the manifests' structure: three replicas
// on PostgreSQL, credentials from the Secret, probes and Service on the
// port labtrail listens on, non-root and read-only.
func TestKubernetesManifests(t *testing.T) {
	m := readManifests(t)
	im := readImage(t)
	known := knownSettings(t)
	d := m.deployment
	pod := d.Spec.Template.Spec

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("Deployment replicas %v; want 3", d.Spec.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Deployment selector %v does not match its pod template's labels %v (%v)", d.Spec.Selector, d.Spec.Template.Labels, err)
	}
	if !labels.SelectorFromSet(m.service.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) || len(m.service.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not select the pods %v", m.service.Spec.Selector, d.Spec.Template.Labels)
	}
	if ps, err := metav1.LabelSelectorAsSelector(m.pdb.Spec.Selector); err != nil || ps.Empty() || !ps.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("PodDisruptionBudget selector %v does not select the pods (%v)", m.pdb.Spec.Selector, err)
	}
	if mina := m.pdb.Spec.MinAvailable; mina == nil || mina.Type != intstr.Int || mina.IntVal < 1 || d.Spec.Replicas == nil || mina.IntVal >= *d.Spec.Replicas {
		t.Errorf("PodDisruptionBudget minAvailable %v: want at least 1 and fewer than the replicas, or no drain could proceed", mina)
	}

	app := container(t, pod.Containers, "labtrail")
	if len(pod.InitContainers) != 1 {
		t.Fatalf("%d init containers; want the one running labtrail migrate", len(pod.InitContainers))
	}
	mig := pod.InitContainers[0]
	if !slices.Equal(app.Args, []string{"serve"}) || !slices.Equal(mig.Args, []string{"migrate"}) || len(app.Command)+len(mig.Command) > 0 {
		t.Errorf("containers run %q %q and init %q %q; want the image's entrypoint with serve, and migrate first", app.Command, app.Args, mig.Command, mig.Args)
	}
	if app.Image != mig.Image || app.Image == "" {
		t.Errorf("images %q and %q: migrate must run the same labtrail as serve", mig.Image, app.Image)
	}

	// Credentials: from the Secret, by keys it has; every key it has used.
	secretKeys := map[string]bool{}
	for k, v := range m.secret.StringData {
		secretKeys[k] = true
		if !strings.Contains(v, "REPLACE_ME") {
			t.Errorf("%s: %s is not a REPLACE_ME placeholder: never commit a credential", m.files["Secret"], k)
		}
	}
	if len(m.secret.Data) > 0 {
		t.Errorf("%s: use stringData placeholders, not data", m.files["Secret"])
	}
	used := map[string]bool{}
	fromSecret := func(c corev1.Container) map[string]string {
		env := map[string]string{}
		for _, e := range c.Env {
			if !known[e.Name] {
				t.Errorf("container %s: %s is not a setting labtrail reads", c.Name, e.Name)
			}
			if e.Value != "" {
				t.Errorf("container %s: %s set inline; settings go in the ConfigMap, secrets in the Secret", c.Name, e.Name)
			}
			if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
				if r.SecretKeyRef.Name != m.secret.Name || !secretKeys[r.SecretKeyRef.Key] {
					t.Errorf("container %s: %s from secret %s key %s, which %s does not hold", c.Name, e.Name, r.SecretKeyRef.Name, r.SecretKeyRef.Key, m.files["Secret"])
				}
				env[e.Name] = r.SecretKeyRef.Key
				used[r.SecretKeyRef.Key] = true
			}
		}
		return env
	}
	appSecrets, migSecrets := fromSecret(app), fromSecret(mig)
	for _, k := range []string{"GITLAB_TOKEN", "LABTRAIL_WEBHOOK_SECRET", "LABTRAIL_DB"} {
		if appSecrets[k] != k {
			t.Errorf("labtrail's %s does not come from the Secret's key %s", k, k)
		}
	}
	if migSecrets["LABTRAIL_DB"] != "LABTRAIL_DB" {
		t.Error("migrate's LABTRAIL_DB does not come from the Secret: it would migrate the image's SQLite default")
	}
	for k := range secretKeys {
		if !used[k] {
			t.Errorf("the Secret's %s is used by no container", k)
		}
	}
	if !strings.HasPrefix(m.secret.StringData["LABTRAIL_DB"], "postgres://") {
		t.Errorf("the Secret's LABTRAIL_DB %q is not a postgres:// URL: replicas share one PostgreSQL database", m.secret.StringData["LABTRAIL_DB"])
	}

	// Settings: from the ConfigMap, each one labtrail reads.
	if len(app.EnvFrom) != 1 || app.EnvFrom[0].ConfigMapRef == nil || app.EnvFrom[0].ConfigMapRef.Name != m.configMap.Name {
		t.Errorf("labtrail does not take its settings from ConfigMap %s", m.configMap.Name)
	}
	for k := range m.configMap.Data {
		if !known[k] {
			t.Errorf("%s: %s is not a setting labtrail reads", m.files["ConfigMap"], k)
		}
		if secretKeys[k] {
			t.Errorf("%s: %s is a secret; keep it in the Secret only", m.files["ConfigMap"], k)
		}
	}

	// Ports: labtrail listens where the probes and the Service look.
	addr := m.configMap.Data["LABTRAIL_ADDR"]
	if addr == "" {
		addr = im.env["LABTRAIL_ADDR"]
	}
	host, port, _ := strings.Cut(addr, ":")
	httpPort := portNumber(app, intstr.FromString("http"))
	if host != "" || port != fmt.Sprint(httpPort) || httpPort == 0 {
		t.Errorf("LABTRAIL_ADDR %q does not listen on all interfaces on the container port named http (%d)", addr, httpPort)
	}
	probes := []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readiness", app.ReadinessProbe, "/readyz"}, {"liveness", app.LivenessProbe, "/healthz"}, {"startup", app.StartupProbe, "/healthz"}}
	for _, p := range probes {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || portNumber(app, p.probe.HTTPGet.Port) != httpPort {
			t.Errorf("%s probe GET %s on port %v; want %s on %d", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path, httpPort)
		}
	}
	if len(m.service.Spec.Ports) != 1 || portNumber(app, m.service.Spec.Ports[0].TargetPort) != httpPort {
		t.Errorf("Service ports %v do not target the container port %d", m.service.Spec.Ports, httpPort)
	}

	// Security: non-root as the image's user, nothing writable but /tmp.
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != int64(im.uid) {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and runAsUser %d (the image's USER)", psc, im.uid)
	}
	if psc != nil && (psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
		t.Error("pod securityContext has no RuntimeDefault seccomp profile")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the service account token is mounted; labtrail does not use the Kubernetes API")
	}
	tmpVolume := map[string]bool{}
	for _, v := range pod.Volumes {
		tmpVolume[v.Name] = v.EmptyDir != nil
	}
	for _, c := range append([]corev1.Container{app}, pod.InitContainers...) {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("container %s: securityContext %+v; want no privilege escalation, read-only root, all capabilities dropped", c.Name, sc)
		}
		tmp := false
		for _, vm := range c.VolumeMounts {
			tmp = tmp || (vm.MountPath == "/tmp" && tmpVolume[vm.Name])
		}
		if !tmp {
			t.Errorf("container %s: no emptyDir on /tmp under its read-only root", c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s: resources %v; want cpu and memory requests and a memory limit", c.Name, c.Resources)
		}
	}

	// kustomization.yaml applies everything but the Secret.
	var want []string
	for k, f := range m.files {
		if k != "Secret" && k != "Kustomization" {
			want = append(want, f)
		}
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(m.kustomize.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml resources %v; want %v (every manifest but the Secret)", got, want)
	}
	if len(m.kustomize.Images) != 1 || m.kustomize.Images[0].Name != app.Image {
		t.Errorf("kustomization.yaml images %+v do not set the image %q", m.kustomize.Images, app.Image)
	}
}

// TestKustomizeBuild renders the directory with kubectl's built-in
// kustomize, which runs offline, and decodes what it renders.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: kustomization.yaml only parsed")
	}
	out, err := exec.Command(kubectl, "kustomize", k8sDir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", k8sDir, err, out)
	}
	m := readManifests(t)
	docs := strings.Split(string(out), "\n---\n")
	if len(docs) != len(m.kustomize.Resources) {
		t.Fatalf("kustomize rendered %d objects; want %d", len(docs), len(m.kustomize.Resources))
	}
	want := m.kustomize.Images[0].NewName + ":" + m.kustomize.Images[0].NewTag
	for _, doc := range docs {
		var d appsv1.Deployment
		if !strings.Contains(doc, "kind: Deployment") {
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(doc), &d); err != nil {
			t.Fatal(err)
		}
		for _, c := range append(d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers...) {
			if c.Image != want {
				t.Errorf("rendered container %s runs %q; want %q", c.Name, c.Image, want)
			}
		}
	}
}
