package resync

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// fakeVerifier reports the regions in bad as mismatched and repairs them
// through a fakeJob, which makes them match.
type fakeVerifier struct {
	job      *fakeJob
	bad      map[int64]bool
	compared []int64
	fail     error
	repairs  [][]int64 // the regions of each Repair
	opts     Options   // of the last Repair
}

func (v *fakeVerifier) Bitmap() *Bitmap { return v.job.bm }
func (v *fakeVerifier) Busy() bool      { return false }

func (v *fakeVerifier) Compare(r int64) (bool, error) {
	if v.fail != nil && len(v.compared) == 3 {
		return false, v.fail
	}
	v.compared = append(v.compared, r)
	return !v.bad[r], nil
}

func (v *fakeVerifier) Repair(ctx context.Context, regions []int64, o Options) error {
	v.repairs = append(v.repairs, regions)
	v.opts = o
	if err := v.job.bm.MarkRegions(regions); err != nil {
		return err
	}
	v.job.onCopy = func(r int64) { delete(v.bad, r) }
	return NewEngine(o).Run(ctx, v.job)
}

func TestVerifyFindsAndRepairs(t *testing.T) {
	j := newFakeJob(t)
	v := &fakeVerifier{job: j, bad: map[int64]bool{4: true, 60: true, 99: true}}
	var last Progress
	res, err := Verify(context.Background(), v, VerifyOptions{Repair: true, Rate: 1 << 40, BatchBytes: 3 * testRegion, Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.repairs) != 1 || !slices.Equal(v.repairs[0], []int64{4, 60, 99}) || v.opts.Rate != 1<<40 || v.opts.BatchBytes != 3*testRegion || v.opts.Progress == nil {
		t.Fatalf("repairs %v with options %+v", v.repairs, v.opts)
	}
	if res.Regions != 100 || res.Bytes != testVol || !slices.Equal(res.Mismatched, []int64{4, 60, 99}) {
		t.Fatalf("result %+v", res)
	}
	if got := j.copiedList(); !slices.Equal(got, []int64{4, 60, 99}) {
		t.Fatalf("repair copied %v", got)
	}
	if len(v.bad) != 0 || j.bm.DirtyCount() != 0 || !j.finished {
		t.Fatalf("after repair: bad %v, dirty %v", v.bad, dirtyList(j.bm))
	}
	if last.Done != last.Total {
		t.Fatalf("last progress %+v", last)
	}
	// Verify again: clean.
	v.compared = nil
	res, err = Verify(context.Background(), v, VerifyOptions{})
	if err != nil || len(res.Mismatched) != 0 {
		t.Fatalf("second verify: %+v, %v", res, err)
	}
}

func TestVerifyUsedOnlyWithoutRepair(t *testing.T) {
	j := newFakeJob(t, 3, 7)
	j.bm.Clean(3, 7) // used but clean
	v := &fakeVerifier{job: j, bad: map[int64]bool{7: true, 8: true}}
	res, err := Verify(context.Background(), v, VerifyOptions{UsedOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v.compared, []int64{3, 7}) || !slices.Equal(res.Mismatched, []int64{7}) {
		t.Fatalf("compared %v, result %+v", v.compared, res)
	}
	if j.bm.DirtyCount() != 0 || len(j.copiedList()) != 0 {
		t.Fatal("verify without repair changed something")
	}
}

func TestVerifyStopsAtAnError(t *testing.T) {
	j := newFakeJob(t)
	boom := errors.New("checksum failed")
	v := &fakeVerifier{job: j, fail: boom}
	res, err := Verify(context.Background(), v, VerifyOptions{})
	if !errors.Is(err, boom) || res.Regions != 3 {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, &fakeVerifier{job: j}, VerifyOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Verify: %v", err)
	}
}
