package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Median returns the median of ds (the mean of the middle two for an even
// count), 0 for none.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Percentile returns the p-th percentile (0–100) of ds by the
// nearest-rank method: the smallest value with at least p % of the values
// at or below it.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = max(1, min(rank, len(s)))
	return s[rank-1]
}

// Spread returns (max-min)/min of ds: how far the runs disagree.
func Spread(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	lo, hi := slices.Min(ds), slices.Max(ds)
	if lo <= 0 {
		return 0
	}
	return float64(hi-lo) / float64(lo)
}

// Seconds formats d as seconds with three significant digits.
func Seconds(d time.Duration) string {
	s := d.Seconds()
	switch {
	case s >= 100:
		return fmt.Sprintf("%.0f s", s)
	case s >= 10:
		return fmt.Sprintf("%.1f s", s)
	default:
		return fmt.Sprintf("%.2f s", s)
	}
}

// Millis formats d in milliseconds, one decimal below 10 ms.
func Millis(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms < 10 {
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// PerMessage formats d/n in microseconds.
func PerMessage(d time.Duration, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(n)/float64(time.Microsecond))
}

// MiB formats a byte count in MiB.
func MiB(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// MB formats a byte count in decimal megabytes, as the table does.
func MB(n int64) string { return fmt.Sprintf("%.0f MB", float64(n)/1e6) }

// Ratio formats a/b as "1.36×".
func Ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// Thousands formats n with spaces between groups of three digits.
func Thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + " " + s[i:]
	}
	return s
}
