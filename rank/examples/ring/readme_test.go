package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// readmeExample returns the fenced Go block of the README that follows the
// job-example marker.
func readmeExample(t *testing.T, readme []byte) []byte {
	t.Helper()
	marker := []byte("<!-- job-example: rank/examples/ring/main.go -->\n```go\n")
	i := bytes.Index(readme, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q marker before its job example", marker)
	}
	body := readme[i+len(marker):]
	end := bytes.Index(body, []byte("\n```\n"))
	if end < 0 {
		t.Fatal("README.md: the job example's fence is not closed")
	}
	return body[:end+1]
}

// TestReadmeExampleCompiles: the README's job example is this program, and
// it builds as a module of its own that points at this checkout with a
// replace directive, the way the README tells a newcomer to.
func TestReadmeExampleCompiles(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	example := readmeExample(t, readme)
	code, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(example, code) {
		t.Errorf("README.md's job example differs from rank/examples/ring/main.go: paste the file into the README")
	}
	dir := t.TempDir()
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	gomod := "module example.com/myjob\n\ngo 1.26.0\n\nrequire github.com/cutpoint/cutpoint v0.0.0\n\nreplace github.com/cutpoint/cutpoint => " + root + "\n"
	for name, b := range map[string][]byte{"main.go": example, "go.mod": []byte(gomod), "go.sum": sum} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// -mod=mod fills the module's requirements as `go mod tidy` would;
	// GOPROXY=off: from the module cache this checkout's build filled.
	build := exec.Command("go", "build", "-mod=mod", "-o", filepath.Join(dir, "myjob"), ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOPROXY=off", "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the README's job example does not build in a module of its own: %v\n%s", err, out)
	}
}
