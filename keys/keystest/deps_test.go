package keystest_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoTestEnvironment: the conformance suites, which other modules may
// import, and the manual clock pull in neither the test environment
// (internal/testenv, which starts servers) nor a database or Redis driver
// (issue 10 item 3); the clock is standard library only.
func TestNoTestEnvironment(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	const mod = "github.com/signet-dev/signet/"
	for pkg, allowed := range map[string][]string{
		mod + "keys/keystest":     {mod, "filippo.io/edwards25519", "golang.org/x/sync/"},
		mod + "replay/replaytest": {mod},
		mod + "internal/testtime": nil,
	} {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			ok := dep == pkg
			for _, prefix := range allowed {
				ok = ok || strings.HasPrefix(dep, prefix)
			}
			if !ok || strings.Contains(dep, "internal/testenv") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
