//go:build linux

package gui

/*
#include <stddef.h>

// glibc's malloc_trim; weak, so that a C library without it links too.
extern int malloc_trim(size_t pad) __attribute__((weak));

static void trim_c_heap(void) {
	if (malloc_trim) {
		malloc_trim(0);
	}
}
*/
import "C"

// trimCHeap gives the C heap's free pages back to the OS: what the GL
// driver and the C libraries under fyne freed when a window closed stays
// in the process otherwise, since it is rarely at the heap's top.
func trimCHeap() { C.trim_c_heap() }
