package gateway

import "testing"

// TestFieldValues checks that the fields rewrite sets from one array are
// independent: appending to one, or writing into it, leaves the others
// alone, and values beyond the array still come.
func TestFieldValues(t *testing.T) {
	var f fieldValues
	var got [][]string
	for i := range 10 {
		got = append(got, f.field(string(rune('a'+i))))
	}
	got[0] = append(got[0], "x")
	got[1][0] = "B"
	for i, v := range got {
		want := []string{string(rune('a' + i))}
		switch i {
		case 0:
			want = append(want, "x")
		case 1:
			want[0] = "B"
		}
		if len(v) != len(want) || v[0] != want[0] || len(v) > 1 && v[1] != want[1] {
			t.Errorf("field %d: %q, want %q", i, v, want)
		}
		if i < 9 && cap(v) != len(v) {
			t.Errorf("field %d: capacity %d for %d values", i, cap(v), len(v))
		}
	}
}

// TestBufferPool checks that the pool lends 32 KiB buffers and takes
// back only those.
func TestBufferPool(t *testing.T) {
	var p bufferPool
	b := p.Get()
	if len(b) != copyBufferSize {
		t.Fatalf("Get: %d bytes", len(b))
	}
	p.Put(b)
	p.Put(make([]byte, 10)) // not one of the pool's: dropped
	for range 3 {
		if b := p.Get(); len(b) != copyBufferSize {
			t.Fatalf("Get: %d bytes", len(b))
		}
	}
}
