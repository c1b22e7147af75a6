package server_test

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labtrail/labtrail/internal/server"
)

// A GitLab user sees only their projects because every read goes through
// the server's view of the store. These fail when a way around it is
// added: a method of Store nobody checked the view for, or a handler that
// asks the store for an optional role directly (the view would not
// narrow what that role answers).
func TestStoreViewCoversStore(t *testing.T) {
	st := reflect.TypeOf((*server.Store)(nil)).Elem()
	for i := range st.NumMethod() {
		if m := st.Method(i).Name; !slices.Contains(server.ViewedStoreMethods, m) {
			t.Errorf("Store.%s is not in ViewedStoreMethods: narrow what it answers to the principal's projects in visibility.go, then list it", m)
		}
	}
	files, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	around := regexp.MustCompile(`s\.store\.\(`)
	for _, f := range files {
		name := f.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || name == "visibility.go" {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if around.Match(src) {
			t.Errorf("%s asks s.store for a role of its own (s.store.(...)): get it through the view, as related() in visibility.go does", name)
		}
	}
}
