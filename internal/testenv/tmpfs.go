package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// MountTmpfs mounts a tmpfs of size bytes on a new directory, unmounted at
// the end of the test, and returns the directory: a small disk that a test
// can fill. Mounting needs root; without it the test skips, unless
// CI=true, when it fails.
func MountTmpfs(tb testing.TB, size int64) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "signet-tmpfs-")
	if err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		os.Remove(dir)
		msg := fmt.Sprintf("cannot mount a tmpfs (it needs root): %v: %s", err, out)
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg + " (CI=true requires it)")
		}
		tb.Skip(msg)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			// Something still holds a file there: detach it now, and the
			// kernel frees it when that lets go.
			tb.Logf("umount %s: %v: %s; detaching it", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
		os.Remove(dir)
	})
	return dir
}
