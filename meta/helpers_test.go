package meta

import "testing"

// sample returns a valid superblock with every field set to something
// distinguishable from zero.
func sample(t testing.TB) *Superblock {
	t.Helper()
	l, err := PlanLayout([]int64{10 << 30, 11 << 30, 12 << 30}, 64<<10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	sb := &Superblock{
		Seq:           7,
		SetUUID:       UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		DiskUUID:      UUID{0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xd0},
		Name:          "vol-0.data_x",
		CreatedUnix:   1700000000,
		Member:        2,
		Role:          Primary,
		DiskState:     UpToDate,
		Flags:         0x5a5a,
		Generations:   Generations{Current: 0x1111, Bitmap: 0x2222, History: [4]uint64{3, 4, 5, 6}},
		ResyncCursor:  1 << 20,
		ResyncTotal:   2 << 20,
		PeerSetUUID:   UUID{0xee, 0xef},
		FailedMembers: 0b100,
	}
	sb.SetLayout(l)
	if err := sb.Validate(); err != nil {
		t.Fatal(err)
	}
	return sb
}

// reseal recomputes the CRC of an edited block.
func reseal(b []byte) []byte {
	le.PutUint32(b[offCRC:], checksum(b))
	return b
}

// rebuilding returns sample with a rebuild of member 1 recorded, 3
// regions in.
func rebuilding(t testing.TB) *Superblock {
	t.Helper()
	sb := sample(t)
	sb.DiskState = Inconsistent
	sb.Flags |= FlagNeedFullSync
	sb.FailedMembers = 0
	sb.SetRebuild(1, 3*sb.RegionSize)
	if err := sb.Validate(); err != nil {
		t.Fatal(err)
	}
	return sb
}
