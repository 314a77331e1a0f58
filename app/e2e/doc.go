// Package e2e holds the desktop app's end-to-end test: the real binary
// under a private X server (Xvfb) and D-Bus session, driven from the
// keyboard like a person would, set up against the reference platform and
// a private Dovecot. It has no code of its own outside the test.
package e2e
