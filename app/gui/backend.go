package gui

import (
	"context"

	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// The UI's contract with what it shows: the Backend it calls, the Status
// it renders. The real app's Backend (runner.go) is a thin adapter over
// connector.Runner, the one supervisor; tests use a fake.

// Backend is everything the UI reads and asks for. The UI holds no sync
// logic: it renders Status and calls these commands. Implementations are
// safe for concurrent use; commands that talk to a server take a context
// and may block for as long as it allows, so the UI calls them off the
// fyne goroutine.
type Backend interface {
	// Status returns where everything stands now. It may read the state
	// database: call it after a signal of Subscribe, not in a tight loop.
	Status() Status
	// Subscribe returns a channel signalled (buffer of one, never closed)
	// whenever Status may have changed, and a function that ends the
	// subscription (safe to call more than once). Signals pending together
	// merge: read Status after each receive.
	Subscribe() (<-chan struct{}, func())
	// SyncNow makes the running engine look for new mail now and retry
	// what waits out a backoff, without rebuilding it
	// (connector.Runner.SyncNow).
	SyncNow()
	// SetPaused sets or clears the user's own reason to pause
	// (engine.PausedByUser); other reasons (a metered network) belong to
	// their owners and stay.
	SetPaused(paused bool)
	// Pair pairs this computer with the platform (first time or again).
	Pair(ctx context.Context, o connector.PairOptions) error
	// FindServers looks up the server settings of an address.
	FindServers(ctx context.Context, email string) (autoconfig.Result, error)
	// Check tests an account without storing anything, reporting each step
	// through progress (called from Check's goroutine, with the whole list
	// each time). It returns the account as it will be stored (a security
	// left empty for "automatic" is filled in). A certificate no root vouches
	// for fails with a *trust.UntrustedError carrying its fingerprint.
	Check(ctx context.Context, acct config.Account, password string, progress func([]Step)) (config.Account, error)
	// AddAccount stores a checked account and starts relaying it.
	AddAccount(ctx context.Context, acct config.Account, password string) error
	// SetPassword checks and stores a new password for an account.
	SetPassword(ctx context.Context, email, password string) error
	// CheckCertificate connects to the account's servers and returns the
	// certificate problem, if any (a *trust.UntrustedError), to show the
	// user the fingerprint before TrustCertificate.
	CheckCertificate(ctx context.Context, email string) error
	// TrustCertificate pins a certificate the user confirmed, for the one
	// server that showed it (pin.Server, host:port).
	TrustCertificate(email string, pin trust.Pin) error
	// SetSettings stores the user's choices that change sets (see
	// connector.Runner.SetUserSettings) and applies them.
	SetSettings(change settings.Values) error
	// LogDir is the folder holding the log files.
	LogDir() string
	// RemoveAccount stops relaying a mailbox and forgets it and its
	// password (connector.Runner.RemoveAccount).
	RemoveAccount(email string) error
	// Unpair forgets the platform (connector.Runner.Unpair).
	Unpair() error
	// PlatformOptions returns how this computer was paired (address, CA
	// file, proxy without its password; no code), to pair again with the
	// same.
	PlatformOptions() connector.PairOptions
}

// Status is the UI's view of the connector at one moment: the Runner's
// (see connector.Status), so that every state the UI shows is typed.
type Status = connector.Status

// StepState is where one step of "Test connection" stands.
type StepState int

// The states of a step.
const (
	StepPending StepState = iota
	StepRunning
	StepPassed
	StepFailed
	StepSkipped
	StepWarned // passed, with something IT should look at
)

// Step is one check of "Test connection", in words a person reads.
type Step struct {
	Title  string
	State  StepState
	Detail string // what was found, or why it failed and what to do
}
