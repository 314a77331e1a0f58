// Package version holds the connector's version, set at build time with
// -ldflags "-X github.com/inboxrelay/inboxrelay/sync/version.Version=…".
package version

// Version is the connector's version string.
var Version = "0.1.0-dev"
