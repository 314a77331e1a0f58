package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// State is where a folder or an account stands. Higher values need the
// user more; an account shows the highest state of its folders.
type State int

// The states, from calm to urgent.
const (
	Starting     State = iota // connecting for the first time
	UpToDate                  // everything relayed, waiting for new mail
	Syncing                   // relaying
	Paused                    // paused by the user
	Offline                   // the mail server or the platform cannot be reached; retrying
	Failing                   // an error that retrying may or may not cure
	NeedsTrust                // the server's certificate is not trusted
	NeedsLogin                // the password is missing or refused
	NeedsPairing              // the platform refused the device token
)

var stateNames = [...]string{"starting", "up to date", "syncing", "paused", "offline", "error", "needs trust", "needs login", "needs pairing"}

// String returns the state as a person reads it ("up to date").
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// Heartbeat returns the state's name in the relay API's heartbeat.
func (s State) Heartbeat() string {
	switch s {
	case Starting, Syncing:
		return "syncing"
	case UpToDate:
		return "idle"
	case Paused:
		return "paused"
	case NeedsLogin:
		return "needs_login"
	case NeedsTrust:
		return "needs_trust"
	}
	return "error"
}

// classify maps an error to the state it puts a folder in.
func classify(err error) State {
	var ue *trust.UntrustedError
	var ne *imapsync.NetError
	var te *relay.TemporaryError
	switch {
	case err == nil:
		return UpToDate
	case errors.Is(err, relay.ErrUnauthorized):
		return NeedsPairing
	case errors.Is(err, imapsync.ErrAuth), errors.Is(err, errNoPassword):
		return NeedsLogin
	case errors.As(err, &ue):
		return NeedsTrust
	case errors.As(err, &ne), errors.As(err, &te), errors.Is(err, imapsync.ErrSlept):
		return Offline
	case errors.Is(err, context.Canceled):
		return Paused
	}
	return Failing
}

// errNoPassword wraps keychain.ErrNotFound for an account's password.
var errNoPassword = errors.New("no password is stored for this account: add it again with `inboxrelay account add`")

func passwordError(email string, err error) error {
	if errors.Is(err, keychain.ErrNotFound) {
		return fmt.Errorf("%s: %w", email, errNoPassword)
	}
	return fmt.Errorf("read the password of %s from the keychain: %w", email, err)
}
