package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// clockTick is the unit of /proc/*/stat times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// GroupCPU returns the CPU time (user + system) used so far by the
// process group of the process whose command line holds marker: its live
// members plus the children its leader has reaped (an IMAP server's
// per-connection processes). Differences of two calls measure a server's
// work over a run. 0 when no such process exists.
func GroupCPU(marker string) time.Duration {
	leader := findProcess(marker)
	if leader == 0 {
		return 0
	}
	var ticks int64
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(pid)
		// After "(comm)": state ppid pgrp session tty tpgid flags minflt
		// cminflt majflt cmajflt utime stime cutime cstime.
		if len(f) < 15 {
			continue
		}
		if pgrp, _ := strconv.Atoi(f[2]); pgrp != leader {
			continue
		}
		for _, i := range []int{11, 12} {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
		if pid == leader {
			for _, i := range []int{13, 14} {
				n, _ := strconv.ParseInt(f[i], 10, 64)
				ticks += n
			}
		}
	}
	return time.Duration(ticks) * clockTick
}

func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// findProcess returns the pid of the process group leader whose command
// line contains marker, 0 if none.
func findProcess(marker string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte(marker)) {
			continue
		}
		if f := statFields(pid); len(f) > 2 && f[2] == e.Name() {
			return pid
		}
	}
	return 0
}

// LoadAverage returns the one-minute load average, -1 if unknown.
func LoadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// IsTmpfs reports whether dir is on a tmpfs (memory) file system.
func IsTmpfs(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC
}

// SelfCPU returns the CPU time (user + system) this process used so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
