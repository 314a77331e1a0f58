//go:build !linux

package gui

// mappedFiles: only Linux's GL driver pages are dropped (driverpages_linux.go).
func mappedFiles() map[string]bool { return nil }

// dropDriverPages: only Linux's GL driver pages are dropped
// (driverpages_linux.go).
func dropDriverPages(map[string]bool) uint64 { return 0 }
