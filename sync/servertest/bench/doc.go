// Package bench is the harness of `make bench` (issue 12): it seeds a
// Dovecot mailbox from a seeded generator, then measures a bare IMAP fetch
// (the limit), mbsync writing a Maildir and Inbox Relay relaying to the
// reference platform, each in a process of its own, and prints a table of
// times, ratios to the bare fetch, CPU per message (the client's,
// Dovecot's, the platform's), peak RSS, the delay of new mail, a slower
// platform and a big mailbox. docs/performance.md explains the table.
//
// It measures and never asserts a number: a run fails only when a client
// did not do its job (a message missing, doubled or refused). Entry point:
// BenchmarkTable, run with -benchtime 1x and the -table.* flags.
package bench
