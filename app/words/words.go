// Package words is everything the desktop app says about where relaying
// stands, in one table per kind of state: the engine's account and folder
// states, the platform's, the reasons for a pause, the errors a person can
// act on, the sources of a setting and the steps of "Test connection"
// (check.go).
//
// The app shows these words, never the engine's own (State.String, error
// texts), except as "details for IT": a reworded engine message cannot
// change what a person reads, and a state added to the engine without
// words here fails this package's tests. Nothing here imports fyne; the
// screens call these functions.
package words

import (
	"crypto/tls"
	"errors"
	"strings"

	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// Fix is the repair the app offers for a problem.
type Fix int

// The repairs.
const (
	FixNone     Fix = iota
	FixPassword     // enter the password again
	FixTrust        // review and trust the new certificate
	FixPair         // pair this computer again
	FixRetry        // try again now (Sync now)
)

// State is what the app says about an account in one engine.State.
type State struct {
	// Label is a few words, lower case, for lists and the tray menu:
	// "up to date".
	Label string
	// Problem is one sentence saying what is wrong and what to do; "" when
	// nothing is.
	Problem string
	// Fix is the repair offered beside Problem.
	Fix Fix
	// Note is the notification sent when an account enters the state
	// (Title ends with the account's address); zero when none is.
	Note Note
}

// Note is a desktop notification.
type Note struct{ Title, Body string }

// accountStates has an entry for every engine.State (a test checks).
var accountStates = map[engine.State]State{
	engine.NotSynced: {Label: "not synced yet"},
	engine.Starting:  {Label: "connecting"},
	engine.UpToDate:  {Label: "up to date"},
	engine.Syncing:   {Label: "relaying"},
	engine.Paused:    {Label: "paused"},
	engine.Offline: {Label: "waiting for the network",
		Problem: "The mail server or the platform cannot be reached; Inbox Relay keeps retrying on its own.", Fix: FixRetry},
	engine.Failing: {Label: "stopped by an error",
		Problem: "Relaying stopped because of an error; try again, and show the details below to IT if it keeps failing.", Fix: FixRetry},
	engine.NeedsTrust: {Label: "certificate to check",
		Problem: "The mail server's certificate changed or is not trusted; check its fingerprint with IT before trusting it.", Fix: FixTrust,
		Note: Note{"Certificate changed for ", "The mail server's certificate is not trusted; open Inbox Relay to review it with IT."}},
	engine.NeedsLogin: {Label: "password needed",
		Problem: "The mail server refused the password; enter the current one to resume relaying.", Fix: FixPassword,
		Note: Note{"Password needed for ", "The mail server refused the password; open Inbox Relay and enter the current one."}},
	engine.NeedsPairing: {Label: "pair again",
		Problem: "The platform no longer accepts this computer; pair it again with a new code.", Fix: FixPair},
}

// Account returns the words for an account (or folder) state.
func Account(s engine.State) State {
	if w, ok := accountStates[s]; ok {
		return w
	}
	return State{Label: "in an unknown state", Problem: "Inbox Relay is in a state this version cannot describe; show the log to IT.", Fix: FixRetry}
}

// Platform is what the app says about the platform connection in one
// engine.PlatformState.
type Platform struct {
	// Line follows the platform's host name: "connected".
	Line string
	// Problem is one sentence; "" when nothing is wrong.
	Problem string
	// Note is sent when the platform enters the state; zero when none is.
	Note Note
}

// platformStates has an entry for every engine.PlatformState.
var platformStates = map[engine.PlatformState]Platform{
	engine.PlatformUnknown:     {Line: "not connected yet"},
	engine.PlatformOK:          {Line: "connected"},
	engine.PlatformUnreachable: {Line: "cannot be reached; retrying"},
	engine.PlatformNeedsPairing: {Line: "refuses this computer; pair again",
		Problem: "The platform no longer accepts this computer; pair it again.",
		Note:    Note{"Pair Inbox Relay again", "The platform no longer accepts this computer; open Inbox Relay and pair it again."}},
}

// PlatformState returns the words for a platform state.
func PlatformState(s engine.PlatformState) Platform {
	if w, ok := platformStates[s]; ok {
		return w
	}
	return Platform{Line: "in an unknown state"}
}

// pauseReasons says each engine.PauseReason as the end of "Relaying is
// paused because …".
var pauseReasons = map[engine.PauseReason]string{
	engine.PausedByUser:    "you paused it",
	engine.PausedOnMetered: "this computer is on a metered connection",
}

// Paused is the headline while relaying is paused for the reasons in why:
// "Relaying is paused because you paused it and this computer is on a
// metered connection."
func Paused(why engine.PauseReason) string {
	var parts []string
	for _, r := range engine.PauseReasons() {
		if why.Has(r) {
			parts = append(parts, pauseReasons[r])
		}
	}
	switch {
	case len(parts) == 0 || why == engine.PausedByUser:
		return "Relaying is paused; resume it when you are ready."
	case !why.Has(engine.PausedByUser):
		return "Relaying is paused because " + strings.Join(parts, " and ") + "; it resumes on its own."
	}
	return "Relaying is paused because " + strings.Join(parts, " and ") + "."
}

// The headlines of the status window: one sentence that sums everything
// up, chosen by the app from the most urgent state.
const (
	NotPaired  = "This computer is not paired with the platform yet."
	NoMailbox  = "No mailbox is set up yet."
	Attention  = "Something needs your attention below."
	Waiting    = "Waiting for the network; Inbox Relay retries on its own."
	Relaying   = "Relaying your mail…"
	AllRelayed = "Everything is relayed."
)

// Stopped says why relaying does not run at all (connector.Status.Stopped).
func Stopped(err error) string {
	switch {
	case errors.Is(err, connector.ErrNotPaired):
		return "This computer is not paired with the platform yet; pair it to start relaying."
	case errors.Is(err, engine.ErrNoAccount):
		return "No mailbox is set up yet; add one to start relaying."
	case errors.Is(err, connector.ErrNoToken):
		return "The platform's key for this computer is missing from the keychain; pair again."
	}
	return "Relaying stopped; show the details to IT if it does not start again on its own."
}

// Pairing says what a failed pairing means and what to do.
func Pairing(err error) string {
	var cv *tls.CertificateVerificationError
	var ue *trust.UntrustedError
	var te *relay.TemporaryError
	if s := pairingNet(err); s != "" {
		return s
	}
	switch {
	case errors.Is(err, relay.ErrNotPlatform):
		return "This address is not your platform's connector address (it answers with a web page): copy the address from the platform's Connector page, then try again."
	case errors.Is(err, relay.ErrBadCode):
		return "The platform did not accept this code; codes work once and expire, so get a new one and try again."
	case errors.As(err, &cv), errors.As(err, &ue):
		return "The platform's certificate is not trusted by this computer; ask IT whether a company certificate must be installed."
	case errors.As(err, &te):
		return "The platform cannot be reached; check the platform address and that this computer is online, then try again."
	}
	return "Pairing failed; check the platform address, and show the details to IT if it keeps failing."
}

// AddAccount says why a tested mailbox was not added.
func AddAccount(err error) string {
	var ue *trust.UntrustedError
	var ne *imapsync.NetError
	switch {
	case errors.Is(err, connector.ErrAccountExists):
		return "This mailbox is set up already."
	case errors.Is(err, imapsync.ErrAuth):
		return "The mail server refused the password this time; test the connection again."
	case errors.As(err, &ue):
		return "The mail server's certificate changed since the test; test the connection again."
	case errors.As(err, &ne):
		return "The mail server could not be reached this time; test the connection again when this computer is online."
	}
	return "The mailbox was not added; test the connection again, and show the log to IT if it keeps failing."
}

// Trust is said when a certificate the user confirmed could not be
// stored.
const Trust = "The certificate could not be stored as trusted; try again, and show the log to IT if it keeps failing."

// Autostart is said when starting at login could not be turned on or off.
const Autostart = "Starting at login could not be changed on this computer; the log says why."

// Demo says why the demo did not start.
func Demo(err error) string {
	return "The demo could not start on this computer; the log says why."
}

// Password says why a new password was not stored.
func Password(err error) string {
	var ue *trust.UntrustedError
	var ne *imapsync.NetError
	switch {
	case errors.Is(err, imapsync.ErrAuth):
		return "The mail server still refuses this password; check it and try again."
	case errors.As(err, &ue):
		return "The mail server's certificate is not trusted, so the password was not sent; review the certificate first."
	case errors.As(err, &ne):
		return "The mail server cannot be reached, so the password could not be checked; try again when this computer is online."
	}
	return "The password could not be checked with the mail server; try again, and show the details to IT if it keeps failing."
}

// Setting says why a setting was not changed.
func Setting(err error) string {
	var le *settings.LockedError
	if errors.As(err, &le) {
		return "Your IT department sets this; it cannot be changed here."
	}
	return "The setting could not be saved; show the details to IT."
}
