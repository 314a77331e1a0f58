//go:build !windows && !darwin

package netdial

import (
	"context"
	"strings"
)

// system reads GNOME's proxy settings with gsettings (which reads dconf, or
// the backend GSETTINGS_BACKEND names): one run that lists the proxy
// schema and its children, rather than one run per key.
func system(ctx context.Context) (SystemSettings, error) {
	out, ok := runOutput(ctx, "gsettings", "list-recursively", "org.gnome.system.proxy")
	if !ok {
		return SystemSettings{}, nil // no gsettings, or no such schema: no GNOME settings
	}
	values := gsettingsValues(out)
	return gnomeSettings(func(schema, key string) (string, bool) {
		v, ok := values[schema+" "+key]
		return v, ok
	}), nil
}

// gsettingsValues reads the lines `gsettings list-recursively` prints,
// "SCHEMA KEY VALUE", into a map from "SCHEMA KEY" to the value's GVariant
// text.
func gsettingsValues(out string) map[string]string {
	values := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		schema, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		key, value, ok := strings.Cut(rest, " ")
		if !ok {
			continue
		}
		values[schema+" "+key] = value
	}
	return values
}
