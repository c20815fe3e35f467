package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// defaultDBPath returns the path of the default database file: $SIGNET_DB
// if set, else $XDG_DATA_HOME/signet/signet.db, else
// ~/.local/share/signet/signet.db. getenv reads the environment.
func defaultDBPath(getenv func(string) string) (string, error) {
	if p := getenv("SIGNET_DB"); p != "" {
		return p, nil
	}
	if d := getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "signet", "signet.db"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no default database path: set SIGNET_DB, XDG_DATA_HOME or HOME: %w", err)
		}
		home = h
	}
	return filepath.Join(home, ".local", "share", "signet", "signet.db"), nil
}

// isPostgresURL reports whether s is a PostgreSQL URL: postgres:// or
// postgresql://.
func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}
