package metrics

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportIsLight checks that importing metrics links neither gRPC nor an
// OTLP exporter: those live in metrics/otlp, for the services that want them.
func TestImportIsLight(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs go list")
	}
	// go test puts the go command's own GOROOT/bin first in the test's PATH.
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), gocmd,
		"list", "-deps", "github.com/servio/perfkit/metrics").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 || deps[len(deps)-1] != "github.com/servio/perfkit/metrics" {
		t.Fatalf("go list -deps did not list the package itself last:\n%s", out)
	}
	for _, dep := range deps {
		for _, heavy := range []string{"google.golang.org/grpc", "go.opentelemetry.io/otel/exporters/otlp"} {
			if dep == heavy || strings.HasPrefix(dep, heavy+"/") {
				t.Errorf("metrics depends on %s (%s belongs in metrics/otlp)", dep, heavy)
			}
		}
	}
}
