package netdial

import "context"

// system reads macOS' network settings (the proxies of the active network
// service) with scutil --proxy.
func system(ctx context.Context) (SystemSettings, error) {
	out, ok := runOutput(ctx, "/usr/sbin/scutil", "--proxy")
	if !ok {
		return SystemSettings{}, nil
	}
	return scutilSettings(out), nil
}
