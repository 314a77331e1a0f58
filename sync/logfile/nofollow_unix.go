//go:build unix

package logfile

import "syscall"

// noFollow makes OpenFile fail on a symbolic link; nonBlock keeps it from
// waiting on a FIFO (which is then refused as not a regular file).
const (
	noFollow = syscall.O_NOFOLLOW
	nonBlock = syscall.O_NONBLOCK
)
