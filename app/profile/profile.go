// Package profile is a debugging aid: with INBOXRELAY_PROFILE=DIR in the
// environment, the program writes a CPU profile of its whole run and, when
// it ends, a heap profile, its goroutines and the Go runtime's memory
// metrics into DIR. It never listens on any port and does nothing without
// the variable; the desktop app's idle benchmark (app/idlebench) uses it.
package profile

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
)

// Env is the environment variable naming the directory profiles go to.
const Env = "INBOXRELAY_PROFILE"

// Start begins profiling when Env is set and returns the function that
// ends it and writes the rest; call that once, before the program exits
// (os.Exit skips deferred calls). Without Env, both do nothing. Failures
// are reported on standard error and never stop the program.
func Start() (stop func()) {
	dir := os.Getenv(Env)
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return func() {}
	}
	cpu, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err == nil {
		err = pprof.StartCPUProfile(cpu)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		write(dir, "goroutines.txt", func(f *os.File) error { return pprof.Lookup("goroutine").WriteTo(f, 1) })
		write(dir, "metrics.txt", writeMetrics)
		runtime.GC()
		write(dir, "heap.pprof", func(f *os.File) error { return pprof.Lookup("heap").WriteTo(f, 0) })
	}
}

func write(dir, name string, fill func(*os.File) error) {
	f, err := os.Create(filepath.Join(dir, name))
	if err == nil {
		err = fill(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
	}
}

// writeMetrics writes every scalar runtime metric about memory, the GC and
// the scheduler, one "name value" a line.
func writeMetrics(f *os.File) error {
	var samples []metrics.Sample
	for _, d := range metrics.All() {
		if d.Kind == metrics.KindFloat64Histogram {
			continue
		}
		if strings.HasPrefix(d.Name, "/memory/") || strings.HasPrefix(d.Name, "/gc/") || strings.HasPrefix(d.Name, "/sched/") || strings.HasPrefix(d.Name, "/cgo/") {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	for _, s := range samples {
		var err error
		switch s.Value.Kind() {
		case metrics.KindUint64:
			_, err = fmt.Fprintf(f, "%s %d\n", s.Name, s.Value.Uint64())
		case metrics.KindFloat64:
			_, err = fmt.Fprintf(f, "%s %g\n", s.Name, s.Value.Float64())
		}
		if err != nil {
			return err
		}
	}
	return nil
}
