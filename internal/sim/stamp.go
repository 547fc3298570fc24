package sim

import (
	"encoding/binary"
	"fmt"
)

// BlockSize is the unit the simulated application writes: every block it
// writes carries a stamp naming the write, so that reading a block back
// says which write put it there.
const BlockSize = 4096

// WriteID names one application write; 0 is "never written" (zeroes).
type WriteID uint64

// Garbage is what a block that holds neither zeroes nor a whole write's
// stamp reads as.
const Garbage = ^WriteID(0)

// stampMagic opens a stamp, so that a block of other bytes (a torn or
// misplaced write) does not read as a write.
const stampMagic = 0x6e6574726169642d // "netraid-"

// fillBlock writes the stamp of write id for block into b (BlockSize
// bytes): magic, id and block index, repeated over the block.
func fillBlock(b []byte, id WriteID, block int64) {
	for o := 0; o+24 <= len(b); o += 24 {
		binary.LittleEndian.PutUint64(b[o:], stampMagic)
		binary.LittleEndian.PutUint64(b[o+8:], uint64(id))
		binary.LittleEndian.PutUint64(b[o+16:], uint64(block))
	}
	for o := len(b) / 24 * 24; o < len(b); o++ {
		b[o] = byte(id)
	}
}

// readStamp decodes a block: the write that wrote it, 0 for zeroes, or an
// error if the block holds anything else (a torn write, another block's
// data, garbage).
func readStamp(b []byte, block int64) (WriteID, error) {
	id := WriteID(binary.LittleEndian.Uint64(b[8:]))
	if binary.LittleEndian.Uint64(b) == 0 && id == 0 {
		for _, c := range b {
			if c != 0 {
				return 0, fmt.Errorf("block %d holds neither zeroes nor one whole write's stamp (first bytes % x)", block, b[:24])
			}
		}
		return 0, nil
	}
	for o := 0; o+24 <= len(b); o += 24 {
		if binary.LittleEndian.Uint64(b[o:]) != stampMagic || WriteID(binary.LittleEndian.Uint64(b[o+8:])) != id ||
			binary.LittleEndian.Uint64(b[o+16:]) != uint64(block) {
			return 0, fmt.Errorf("block %d holds neither zeroes nor one whole write's stamp (bytes %d-%d: % x)", block, o, o+24, b[o:o+24])
		}
	}
	for o := len(b) / 24 * 24; o < len(b); o++ {
		if b[o] != byte(id) {
			return 0, fmt.Errorf("block %d holds neither zeroes nor one whole write's stamp (byte %d)", block, o)
		}
	}
	return id, nil
}
