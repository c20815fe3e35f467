package cli

import "testing"

func TestDefaultDBPath(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SIGNET_DB": "/srv/keys.db", "XDG_DATA_HOME": "/x", "HOME": "/h"}, "/srv/keys.db"},
		{map[string]string{"XDG_DATA_HOME": "/x", "HOME": "/h"}, "/x/signet/signet.db"},
		{map[string]string{"XDG_DATA_HOME": "relative", "HOME": "/h"}, "/h/.local/share/signet/signet.db"},
		{map[string]string{"HOME": "/h"}, "/h/.local/share/signet/signet.db"},
	} {
		got, err := defaultDBPath(func(k string) string { return tt.env[k] })
		if err != nil || got != tt.want {
			t.Errorf("defaultDBPath(%v) = %q, %v; want %q", tt.env, got, err, tt.want)
		}
	}
}

func TestIsPostgresURL(t *testing.T) {
	for s, want := range map[string]bool{
		"postgres://u@h/db": true, "postgresql://h/db": true, "postgresx://h": false,
		"/var/lib/signet.db": false, "sqlite:///x.db": false, "": false,
	} {
		if got := isPostgresURL(s); got != want {
			t.Errorf("isPostgresURL(%q) = %v", s, got)
		}
	}
}
