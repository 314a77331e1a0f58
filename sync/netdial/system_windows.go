package netdial

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/windows/registry"
)

// system reads the current user's WinINET proxy settings (what Internet
// Options and Settings > Network > Proxy set) from the registry.
func system(context.Context) (SystemSettings, error) {
	k, err := registry.OpenKey(registry.CURRENT_USER, `Software\Microsoft\Windows\CurrentVersion\Internet Settings`, registry.QUERY_VALUE)
	if errors.Is(err, registry.ErrNotExist) {
		return SystemSettings{}, nil
	}
	if err != nil {
		return SystemSettings{}, fmt.Errorf("open the Internet settings in the registry: %w", err)
	}
	defer k.Close()
	enable, _, _ := k.GetIntegerValue("ProxyEnable")
	server, _, _ := k.GetStringValue("ProxyServer")
	override, _, _ := k.GetStringValue("ProxyOverride")
	pac, _, _ := k.GetStringValue("AutoConfigURL")
	return wininetSettings(enable, server, override, pac), nil
}
