package blockdev

// Trim discards the whole blocks inside [off, off+n); partial blocks at
// its edges are left alone, which the Trimmer contract allows.
func (a *Aligned) Trim(off, n int64) error {
	if err := a.check(off, n); err != nil {
		return err
	}
	if lo, hi := innerBlocks(off, n, a.bs); lo < hi {
		return Trim(a.d, lo, hi-lo)
	}
	return nil
}

// WriteZeroes zeroes the whole blocks inside the range on the device and
// the partial edge blocks by read-modify-write.
func (a *Aligned) WriteZeroes(off, n int64, mayTrim bool) error {
	if err := a.check(off, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	lo, hi := innerBlocks(off, n, a.bs)
	if lo >= hi {
		return a.zeroPartial(off, off+n)
	}
	if err := a.zeroPartial(off, lo); err != nil {
		return err
	}
	if err := WriteZeroes(a.d, lo, hi-lo, mayTrim); err != nil {
		return err
	}
	return a.zeroPartial(hi, off+n)
}

// zeroPartial zeroes [from, to), less than two blocks, through the
// read-modify-write path.
func (a *Aligned) zeroPartial(from, to int64) error {
	if from >= to {
		return nil
	}
	_, err := a.write(Zeroes(int(to-from)), from, false)
	return err
}

// Map passes the request through: allocation maps need no alignment.
func (a *Aligned) Map(off, n int64) ([]Extent, error) {
	if err := a.check(off, n); err != nil {
		return nil, err
	}
	return Map(a.d, off, n)
}

// Checksum lets the device compute the sum if it can, else reads the
// range through a, so that any range works.
func (a *Aligned) Checksum(off, n int64) (Sum, error) {
	if err := a.check(off, n); err != nil {
		return Sum{}, err
	}
	if c, ok := a.d.(Checksummer); ok {
		return c.Checksum(off, n)
	}
	return readChecksum(a, off, n)
}
