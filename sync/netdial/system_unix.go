//go:build !windows && !darwin

package netdial

import "context"

// system reads GNOME's proxy settings with gsettings (which reads dconf, or
// the backend GSETTINGS_BACKEND names).
func system(ctx context.Context) (SystemSettings, error) {
	if _, ok := runOutput(ctx, "gsettings", "--version"); !ok {
		return SystemSettings{}, nil
	}
	return gnomeSettings(func(schema, key string) (string, bool) {
		return runOutput(ctx, "gsettings", "get", schema, key)
	}), nil
}
