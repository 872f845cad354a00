package httpapi

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestRoutesMatchOpenAPI: every route of routes() is an operation of
// docs/openapi.yaml, and every operation there is a route, so the document
// cannot drift from the server. Query parameters of the list routes are
// checked against the parsers' allowed lists too.
func TestRoutesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Ref  string `yaml:"$ref"`
				Name string `yaml:"name"`
				In   string `yaml:"in"`
			} `yaml:"parameters"`
		} `yaml:"paths"`
		Components struct {
			Parameters map[string]struct {
				Name string `yaml:"name"`
				In   string `yaml:"in"`
			} `yaml:"parameters"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	a := &api{cfg: Config{}.WithDefaults(), mux: http.NewServeMux()}
	served := map[string]bool{}
	for _, rt := range a.routes() {
		key := rt.method + " " + rt.path
		served[key] = true
		if !documented[key] {
			t.Errorf("route %s is not in docs/openapi.yaml", key)
		}
	}
	for key := range documented {
		if !served[key] {
			t.Errorf("docs/openapi.yaml documents %s, which no route serves", key)
		}
	}
	// The query parameters of the list routes.
	queryParams := func(path string) []string {
		var out []string
		for _, p := range doc.Paths[path]["get"].Parameters {
			if p.Ref != "" {
				c := doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
				p.Name, p.In = c.Name, c.In
			}
			if p.In == "query" {
				out = append(out, p.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	for path, want := range map[string][]string{
		APIPrefix + "/cckm/azure/vaults":               VaultParams,
		APIPrefix + "/cckm/azure/synchronization-jobs": JobParams,
		APIPrefix + "/cckm/azure/keys":                 KeyParams,
		ConnectionsPath:                                ConnectionParams,
		EventsPath:                                     EventParams,
	} {
		want = slices.Sorted(slices.Values(want))
		if got := queryParams(path); !slices.Equal(got, want) {
			t.Errorf("GET %s: docs/openapi.yaml has query parameters %v, the parser takes %v", path, got, want)
		}
	}
}
