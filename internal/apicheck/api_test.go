package apicheck

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite api/perfkit.txt from the current source")

const module = "github.com/servio/perfkit"

// TestAPI fails when the exported API differs from api/perfkit.txt. A
// deliberate change is recorded with
//
//	go test ./internal/apicheck -update
//
// and the changed api/perfkit.txt is committed with it.
func TestAPI(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := Dump(root, module)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(lines, "\n") + "\n"
	golden := filepath.Join(root, "api", "perfkit.txt")
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d lines)", golden, len(lines))
		return
	}
	wantBytes, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading the API golden file: %v (create it with: go test ./internal/apicheck -update)", err)
	}
	want := strings.Split(strings.TrimSuffix(string(wantBytes), "\n"), "\n")
	added, removed := diff(want, lines)
	if len(added) == 0 && len(removed) == 0 {
		return
	}
	var b strings.Builder
	for _, l := range removed {
		b.WriteString("\n  - " + l)
	}
	for _, l := range added {
		b.WriteString("\n  + " + l)
	}
	t.Errorf("the exported API differs from api/perfkit.txt (- missing now, + new):%s\n\n"+
		"If the change is deliberate, run `go test ./internal/apicheck -update` and commit api/perfkit.txt.", b.String())
}

// diff returns the lines only in got (added) and only in want (removed).
func diff(want, got []string) (added, removed []string) {
	in := func(s []string) map[string]int {
		m := map[string]int{}
		for _, l := range s {
			m[l]++
		}
		return m
	}
	w, g := in(want), in(got)
	for _, l := range got {
		if w[l] == 0 {
			added = append(added, l)
		} else {
			w[l]--
		}
	}
	for _, l := range want {
		if g[l] == 0 {
			removed = append(removed, l)
		} else {
			g[l]--
		}
	}
	return added, removed
}

func TestDumpSample(t *testing.T) {
	dir := t.TempDir()
	src := `package sample

// Config configures.
type Config struct {
	Name  string
	count int
	Limit, Burst int
}

type Limiter interface {
	Allow(ctx interface{}, key string) (bool, error)
	hidden()
}

type Pair[K comparable, V any] struct{ Key K }

const Default = 5 * 2
var ErrX = errorString("x")

type errorString string

func (e errorString) Error() string { return string(e) }

func New(cfg Config, opts ...int) (*Config, error) { return nil, nil }
func Wrap1[A, T any](fn func(A) T) func(A) T { return fn }
func (c *Config) Do(a, b int) {}
func (p Pair[K, V]) Get() K { return p.Key }
func unexported() {}
`
	if err := os.WriteFile(filepath.Join(dir, "s.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "s_test.go"), []byte("package sample\nfunc TestX() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lines, err := Dump(dir, "example.com/sample")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"pkg example.com/sample, const Default = 5 * 2",
		"pkg example.com/sample, func New(Config, ...int) (*Config, error)",
		"pkg example.com/sample, func Wrap1[A, T any](func(A) T) func(A) T",
		"pkg example.com/sample, method (*Config) Do(int, int)",
		"pkg example.com/sample, method (Pair[K, V]) Get() K",
		"pkg example.com/sample, type Config struct",
		"pkg example.com/sample, type Config struct, Burst int",
		"pkg example.com/sample, type Config struct, Limit int",
		"pkg example.com/sample, type Config struct, Name string",
		"pkg example.com/sample, type Limiter interface",
		"pkg example.com/sample, type Limiter interface, Allow(interface{}, string) (bool, error)",
		"pkg example.com/sample, type Pair struct, Key K",
		"pkg example.com/sample, type Pair[K comparable, V any] struct",
		"pkg example.com/sample, var ErrX",
	}
	if got, exp := strings.Join(lines, "\n"), strings.Join(want, "\n"); got != exp {
		t.Errorf("listing:\n%s\n\nwant:\n%s", got, exp)
	}
}
