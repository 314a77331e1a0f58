//go:build !windows

package gui

// systemUsesLightTheme is Windows' alone.
func systemUsesLightTheme() bool { return false }
