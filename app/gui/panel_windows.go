package gui

import "golang.org/x/sys/windows/registry"

// systemUsesLightTheme reads whether Windows draws its taskbar light
// (SystemUsesLightTheme = 1); false (dark, Windows' default) when it
// cannot tell.
func systemUsesLightTheme() bool {
	k, err := registry.OpenKey(registry.CURRENT_USER, `Software\Microsoft\Windows\CurrentVersion\Themes\Personalize`, registry.QUERY_VALUE)
	if err != nil {
		return false
	}
	defer k.Close()
	v, _, err := k.GetIntegerValue("SystemUsesLightTheme")
	return err == nil && v == 1
}
