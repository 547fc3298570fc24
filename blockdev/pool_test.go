package blockdev

import "testing"

func TestSizeClass(t *testing.T) {
	cases := []struct {
		n     int
		class int
		ok    bool
	}{
		{0, 0, true}, {1, 0, true}, {4096, 0, true}, {4097, 1, true}, {8192, 1, true},
		{1 << 20, 8, true}, {1<<20 + 1, 9, true}, {8 << 20, 11, true}, {8<<20 + 1, 0, false},
	}
	for _, c := range cases {
		class, ok := sizeClass(c.n)
		if class != c.class || ok != c.ok {
			t.Errorf("sizeClass(%d) = %d, %v; want %d, %v", c.n, class, ok, c.class, c.ok)
		}
	}
}

func TestGetBuffer(t *testing.T) {
	for _, align := range []int{512, 4096, 65536} {
		for _, n := range []int{0, 1, 511, 512, 4096, 5000, 1 << 20, 8 << 20, 9<<20 + 3} {
			b := GetBuffer(n, align)
			if len(b) != n {
				t.Fatalf("GetBuffer(%d, %d): len %d", n, align, len(b))
			}
			if n > 0 && !IsAligned(b, align) {
				t.Fatalf("GetBuffer(%d, %d): address not aligned", n, align)
			}
			if n > 0 {
				b[0], b[n-1] = 1, 1 // both ends are usable
			}
			PutBuffer(b)
		}
	}
}

func TestPutBufferRejectsForeignShapes(t *testing.T) {
	b := GetBuffer(8192, 4096)
	PutBuffer(b[1:]) // resliced: misaligned, dropped
	PutBuffer(make([]byte, 3000))
	PutBuffer(nil)
	for range 100 {
		g := GetBuffer(4096, 4096)
		if !IsAligned(g, 4096) || cap(g) < 4096 {
			t.Fatal("pool handed out a buffer that is not a pooled shape")
		}
		PutBuffer(g)
	}
}

func TestGetBufferPanicsOnBadAlignment(t *testing.T) {
	for _, align := range []int{0, 256, 513, 3000} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("GetBuffer(1, %d) did not panic", align)
				}
			}()
			GetBuffer(1, align)
		}()
	}
}

func TestZeroesAligned(t *testing.T) {
	for _, n := range []int{512, zeroChunk, zeroChunk + 4096} {
		z := Zeroes(n)
		if len(z) != n || !IsAligned(z, poolAlign) {
			t.Fatalf("Zeroes(%d) is not an aligned buffer of that length", n)
		}
		for _, v := range z {
			if v != 0 {
				t.Fatalf("Zeroes(%d) is not zero", n)
			}
		}
	}
}
