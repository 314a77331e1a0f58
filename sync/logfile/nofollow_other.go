//go:build !unix

package logfile

// Windows has no O_NOFOLLOW: open checks with Lstat first.
const (
	noFollow = 0
	nonBlock = 0
)
