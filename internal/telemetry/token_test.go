package telemetry

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadMetricsToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := strings.Repeat("a1", 20)
	tok, err := LoadMetricsToken(write("good", good+"\n"))
	if err != nil || string(tok) != good {
		t.Fatalf("token %q, %v", tok, err)
	}
	for name, content := range map[string]string{"short": "abc\n", "spaced": good + " " + good} {
		_, err := LoadMetricsToken(write(name, content))
		if !errors.Is(err, ErrMetricsToken) || strings.Contains(err.Error(), good) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if tok, err := LoadMetricsToken(""); tok != nil || err != nil {
		t.Errorf("no file: %q %v", tok, err)
	}
}
