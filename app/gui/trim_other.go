//go:build !linux

package gui

// trimCHeap: only glibc's heap is trimmed (trim_linux.go).
func trimCHeap() {}
