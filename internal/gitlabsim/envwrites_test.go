package gitlabsim_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// The environment writes (POST /projects/:id/environments, PUT
// /projects/:id/environments/:environment_id) answer GitLab's environment
// entity, validate as GitLab does, need the api scope and are recorded.
func TestEnvironmentWrites(t *testing.T) {
	sim, api, p1, _, _ := hooksAPISim(t, gitlabsim.Options{})
	code, created, raw := hooksAPIReq(t, "POST", api+"/projects/"+p1+"/environments",
		`{"name": "review/cb-1", "external_url": "https://cb-1.example.com"}`)
	if code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, raw)
	}
	checkShape(t, "POST /projects/:id/environments", environmentDoc, []map[string]any{created}, nil, nil)
	if created["name"] != "review/cb-1" || created["external_url"] != "https://cb-1.example.com" ||
		created["state"] != "available" || created["tier"] != "development" {
		t.Errorf("created %v", created)
	}
	id := hooksItoa(int64(created["id"].(float64)))
	// Listed by name, as the client finds it.
	_, _, raw = hooksAPIReq(t, "GET", api+"/projects/"+p1+"/environments?name="+url.QueryEscape("review/cb-1"), "")
	var listed []map[string]any
	if err := json.Unmarshal(raw, &listed); err != nil || len(listed) != 1 || listed[0]["id"] != created["id"] {
		t.Fatalf("listed by name: %v %s", err, raw)
	}
	code, edited, raw := hooksAPIReq(t, "PUT", api+"/projects/"+p1+"/environments/"+id, `{"external_url": "https://cb-1b.example.com"}`)
	if code != http.StatusOK || edited["external_url"] != "https://cb-1b.example.com" {
		t.Fatalf("PUT: %d %s", code, raw)
	}
	checkShape(t, "PUT /projects/:id/environments/:environment_id", environmentDoc, []map[string]any{edited}, nil, nil)
	_, got, _ := hooksAPIReq(t, "GET", api+"/projects/"+p1+"/environments/"+id, "")
	if got["external_url"] != "https://cb-1b.example.com" {
		t.Errorf("GET after PUT: %v", got["external_url"])
	}
	for _, c := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/environments", `{"name": "review/cb-1"}`, http.StatusBadRequest}, // taken
		{"POST", "/environments", `{"external_url": "https://x.example.com"}`, http.StatusBadRequest},
		{"POST", "/environments", `{"name": "bad name!"}`, http.StatusBadRequest},
		{"POST", "/environments", `{"name": "x", "external_url": "ftp://x"}`, http.StatusBadRequest},
		{"PUT", "/environments/" + id, `{"tier": "moon"}`, http.StatusBadRequest},
		{"PUT", "/environments/999999", `{"external_url": "https://x.example.com"}`, http.StatusNotFound},
	} {
		if code, _, raw := hooksAPIReq(t, c.method, api+"/projects/"+p1+c.path, c.body); code != c.code {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, code, raw, c.code)
		}
	}
	ws := sim.EnvironmentWrites()
	if len(ws) != 8 || ws[0].Method != "POST" || ws[0].Status != http.StatusCreated || ws[0].Params["name"] != "review/cb-1" ||
		ws[1].Method != "PUT" || ws[1].Params["external_url"] != "https://cb-1b.example.com" || ws[1].EnvironmentID != int64(created["id"].(float64)) {
		t.Errorf("recorded writes: %+v", ws)
	}

	// A read_api token reads but does not write.
	_, api2, q1, _, _ := hooksAPISim(t, gitlabsim.Options{Scopes: []string{"read_api"}})
	if code, _, raw := hooksAPIReq(t, "POST", api2+"/projects/"+q1+"/environments", `{"name": "x"}`); code != http.StatusForbidden {
		t.Errorf("POST with read_api: %d %s", code, raw)
	}
}
