package migrate

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_more.sql":  {Data: []byte("B")},
		"m/0001_init.sql":  {Data: []byte("A")},
		"m/0010_later.sql": {Data: []byte("C")},
		"m/README":         {Data: []byte("not a migration")},
	}
	ms, err := Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Name+"="+m.SQL)
	}
	if strings.Join(got, " ") != "0001_init.sql=A 0002_more.sql=B 0010_later.sql=C" || Latest(ms) != 10 || ms[1].Version != 2 {
		t.Errorf("Load = %v", got)
	}
	for name, bad := range map[string]fstest.MapFS{
		"no number":     {"m/init.sql": {}},
		"zero":          {"m/0000_x.sql": {}},
		"same version":  {"m/0001_a.sql": {}, "m/01_b.sql": {}},
		"no migrations": {"m/README": {}},
		"no underscore": {"m/0001.sql": {}},
	} {
		if _, err := Load(bad, "m"); err == nil {
			t.Errorf("%s: Load succeeded", name)
		}
	}
}
