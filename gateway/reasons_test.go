package gateway_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReasonCodesDocumented: every reason code a refusal can end its
// problem type with, declared anywhere in the module as a Reason constant,
// is named in the README, which is where clients look them up (issue 8:
// "list them in the README").
func TestReasonCodesDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	decl := regexp.MustCompile(`Reason[A-Za-z]*\s+(?:httpsig\.)?Reason\s*=\s*"([a-z-]+)"`)
	found := 0
	for _, dir := range []string{"../httpsig", "../middleware", "../gateway", "../keys", "../policy", "../limit"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range decl.FindAllSubmatch(src, -1) {
				found++
				if !strings.Contains(string(readme), "`"+string(m[1])+"`") {
					t.Errorf("reason code %s (%s) is not in README.md", m[1], f)
				}
			}
		}
	}
	if found < 20 {
		t.Fatalf("found only %d reason codes: have their declarations changed shape?", found)
	}
}
