//go:build linux

package gui

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// TestDropDriverPages maps a stand-in for a library the GL driver loads in
// the ways the dynamic loader does, and checks that dropDriverPages takes
// out of resident memory only what comes back unchanged from the file:
// the pages of a read-only, unmodified mapping of a library that was not
// mapped at start.
func TestDropDriverPages(t *testing.T) {
	const size = 64 << 12
	content := bytes.Repeat([]byte("inbox relay "), size/12+1)[:size]
	dir := t.TempDir()
	write := func(name string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	lib := write("libdriver.so.1")
	tests := []struct {
		name     string
		path     string
		atStart  bool
		writable bool // mapped read-write (data)
		modified bool // a page written, then the mapping made read-only (relocated data)
		dropped  bool
	}{
		{name: "driver code", path: lib, dropped: true},
		{name: "mapped at start", path: lib, atStart: true},
		{name: "writable data", path: lib, writable: true, modified: true},
		{name: "relocated read-only data", path: lib, modified: true},
		{name: "not a library", path: write("data.bin")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(tc.path)
			if tc.writable || tc.modified {
				f, err = os.OpenFile(tc.path, os.O_RDWR, 0)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			prot := syscall.PROT_READ
			if tc.writable || tc.modified {
				prot |= syscall.PROT_WRITE
			}
			m, err := syscall.Mmap(int(f.Fd()), 0, size, prot, syscall.MAP_PRIVATE)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Munmap(m)
			want := bytes.Clone(content)
			if tc.modified {
				m[5] = '!'
				want[5] = '!'
			}
			if tc.modified && !tc.writable {
				if err := syscall.Mprotect(m, syscall.PROT_READ); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(m, want) { // faults every page in
				t.Fatal("the mapping does not read back what it maps")
			}
			before := residentAt(t, m)
			if before == 0 {
				t.Fatal("no page of the mapping is resident after reading it all")
			}
			atStart := map[string]bool{}
			if tc.atStart {
				atStart[tc.path] = true
			}
			dropDriverPages(atStart)
			after := residentAt(t, m)
			if tc.dropped && after != 0 {
				t.Errorf("resident after the drop: %d bytes, want 0 (before: %d)", after, before)
			}
			if !tc.dropped && after != before {
				t.Errorf("resident after the drop: %d bytes, want it kept (%d)", after, before)
			}
			if !bytes.Equal(m, want) {
				t.Error("the mapping reads back other contents after the drop")
			}
		})
	}
}

// residentAt returns the resident size of the mapping that starts at m's
// first byte, from /proc/self/smaps.
func residentAt(t *testing.T, m []byte) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(&m[0])))
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") {
			in = strings.HasPrefix(f[0], start)
			continue
		}
		if in && f[0] == "Rss:" {
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n << 10
		}
	}
	t.Fatalf("no mapping starts at %s in /proc/self/smaps", start)
	return 0
}
