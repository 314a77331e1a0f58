//go:build linux

package gui

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// mappedFiles returns the files the process maps now (/proc/self/maps).
// Taken before the first window, it tells the app's own code and the
// libraries it links from what the GL driver loads into the process when
// a window first makes an OpenGL context (dropDriverPages).
func mappedFiles() map[string]bool {
	files := map[string]bool{}
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return files
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 6 && strings.HasPrefix(f[5], "/") {
			files[strings.Join(f[5:], " ")] = true
		}
	}
	return files
}

// dropDriverPages takes out of the process's resident memory the pages of
// shared libraries it maps now and did not map at start (atStart, from
// mappedFiles): the GL driver (Mesa's DRI driver, LLVM and the libraries
// they bring), which stays loaded after the last window closed, since Mesa
// keeps it (and its threads) for GLFW's X connection, open until the app
// quits. Only a file's pages that are private, read-only and unmodified
// are dropped (no page of the mapping is the process's own copy: smaps'
// Anonymous and Swap are 0): for those, madvise(MADV_DONTNEED) only
// unmaps them, and a later use faults them in again from the file, as on
// the first use, with the same contents. The pages stay in the kernel's
// page cache for as long as it sees fit. Relocated data (the process's own
// copy) and writable data are kept.
//
// It returns how many resident bytes it dropped. Call it with no window
// shown; safe from any goroutine (a mapping's pages that are used again
// meanwhile come back on their own).
func dropDriverPages(atStart map[string]bool) uint64 {
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0
	}
	var dropped uint64
	var cur struct {
		lo, hi   uintptr
		ok       bool
		rss, own uint64 // own: resident or swapped, the process's copy
	}
	drop := func() {
		if cur.ok && cur.rss > 0 && cur.own == 0 {
			if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, cur.lo, cur.hi-cur.lo, syscall.MADV_DONTNEED); e == 0 {
				dropped += cur.rss
			}
		}
		cur.ok = false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") {
			// A mapping's header: "lo-hi perms offset dev inode [path]".
			drop()
			if len(f) < 6 || !strings.HasPrefix(f[5], "/") {
				continue
			}
			if path := strings.Join(f[5:], " "); atStart[path] || !isLibrary(path) {
				continue
			}
			perms := f[1]
			if len(perms) != 4 || perms[1] == 'w' || perms[3] != 'p' {
				continue
			}
			lo, hi, found := strings.Cut(f[0], "-")
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			if !found || err1 != nil || err2 != nil || h <= l {
				continue
			}
			cur.lo, cur.hi, cur.ok, cur.rss, cur.own = uintptr(l), uintptr(h), true, 0, 0
			continue
		}
		if !cur.ok || len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			cur.rss = n << 10
		case "Anonymous:", "Swap:":
			cur.own += n << 10
		}
	}
	drop()
	return dropped
}

// isLibrary says whether path names a shared library ("libX.so",
// "libX.so.1.2"): the GL driver's code, never a data file that someone
// could shorten under the mapping.
func isLibrary(path string) bool {
	path = strings.TrimSuffix(path, " (deleted)")
	return strings.HasSuffix(path, ".so") || strings.Contains(path, ".so.")
}
