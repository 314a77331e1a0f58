// Package idlebench measures the desktop app at rest: the real binary under
// a private X server (Xvfb) with a real StatusNotifier host (a panel), a
// private D-Bus session and keychain, one Dovecot mailbox whose messages
// are already relayed to the reference platform. `make bench` runs its
// benchmark, which prints the app's CPU use, wake-ups and resident memory
// with its window never opened, open, and closed again. It has no code of
// its own outside the benchmark.
package idlebench
