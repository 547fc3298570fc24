package lat

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Histogram is one stage's histogram at a moment.
type Histogram struct {
	Stage string `json:"stage"`
	Count uint64 `json:"count"`
	// Sum is the total of the durations recorded, in nanoseconds.
	Sum time.Duration `json:"sum_ns"`
	// Buckets are the non-empty buckets, in order: Count durations fell
	// below Le (in nanoseconds; 0 for the last bucket, which has no bound)
	// and at or above the previous bucket's Le. Not cumulative.
	Buckets []Bucket `json:"buckets"`
}

// Bucket is one bucket of a Histogram.
type Bucket struct {
	Le    time.Duration `json:"le_ns"`
	Count uint64        `json:"count"`
}

// Snapshot returns every stage's histogram, recorded or not, in stage
// order. Concurrent recording may leave Count and Sum a few durations
// apart; each is consistent with itself.
func Snapshot() []Histogram {
	out := make([]Histogram, NumStages)
	for s := range NumStages {
		h := &hists[s]
		hs := Histogram{Stage: s.String(), Sum: time.Duration(h.sum.Load())}
		for i := range h.counts {
			if n := h.counts[i].Load(); n > 0 {
				hs.Buckets = append(hs.Buckets, Bucket{Le: upper(i), Count: n})
				hs.Count += n
			}
		}
		out[s] = hs
	}
	return out
}

// Mean is the average duration, 0 if none was recorded.
func (h Histogram) Mean() time.Duration {
	if h.Count == 0 {
		return 0
	}
	return h.Sum / time.Duration(h.Count)
}

// Quantile estimates the q-quantile (0 < q <= 1), interpolating within
// its bucket; 0 if nothing was recorded. Within a quarter of an octave
// (about 19%) of the truth.
func (h Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	rank := q * float64(h.Count)
	var seen float64
	var lo time.Duration
	for _, b := range h.Buckets {
		hi := b.Le
		if hi == 0 { // above the last bound: report the bound
			return lo
		}
		if seen+float64(b.Count) >= rank {
			blo := lowerOf(hi)
			return blo + time.Duration(float64(hi-blo)*(rank-seen)/float64(b.Count))
		}
		seen += float64(b.Count)
		lo = hi
	}
	return lo
}

// lowerOf is the lower bound of the bucket whose upper bound is le.
func lowerOf(le time.Duration) time.Duration {
	for i := range nBuckets - 1 {
		if upper(i) == le {
			if i == 0 {
				return 0
			}
			return upper(i - 1)
		}
	}
	return 0
}

// PromBuckets returns the cumulative counts at every power of two of
// nanoseconds from 2^9 ns, keyed by the bound in seconds: the buckets
// argument of prometheus.MustNewConstHistogram (whose +Inf bucket is
// Count). Sum in seconds is Sum.Seconds().
func (h Histogram) PromBuckets() map[float64]uint64 {
	out := make(map[float64]uint64, maxExp-minExp)
	for e := minExp + 1; e <= maxExp; e++ {
		bound := time.Duration(uint64(1) << e)
		var n uint64
		for _, b := range h.Buckets {
			if b.Le != 0 && b.Le <= bound {
				n += b.Count
			}
		}
		out[bound.Seconds()] = n
	}
	return out
}

// WriteFile writes Snapshot to path as JSON, replacing the file whole
// (a reader never sees half of one).
func WriteFile(path string) error {
	b, err := json.Marshal(Snapshot())
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".lat-*")
	if err != nil {
		return fmt.Errorf("lat: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("lat: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("lat: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("lat: %w", err)
	}
	return nil
}

// EnvVar names the file the histograms are written to every second when
// set (see the package documentation).
const EnvVar = "NETRAID_LATENCY"

func init() {
	path := os.Getenv(EnvVar)
	if path == "" {
		return
	}
	Enable(true)
	go func() {
		for range time.Tick(time.Second) {
			WriteFile(path)
		}
	}()
}
