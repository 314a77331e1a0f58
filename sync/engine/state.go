package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/imapsync"
	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// State is where a folder or an account stands. Higher values need the
// user more; an account shows the highest state of its folders. Its text
// form (String, MarshalText) is the word status.json and `inboxrelay
// status` show ("up to date"); front ends switch on the value and take
// their words from their own table, never from this text. A new state
// must be added before numStates, with its word in stateNames.
type State int

// The states, from calm to urgent.
const (
	NotSynced    State = iota // nothing known yet (no status from the engine)
	Starting                  // connecting for the first time
	UpToDate                  // everything relayed, waiting for new mail
	Syncing                   // relaying
	Paused                    // paused (see Snapshot.PausedFor)
	Offline                   // the mail server or the platform cannot be reached; retrying
	Failing                   // an error that retrying may or may not cure
	NeedsTrust                // the server's certificate is not trusted
	NeedsLogin                // the password is missing or refused
	NeedsPairing              // the platform refused the device token
	numStates
)

var stateNames = [numStates]string{"not synced yet", "starting", "up to date", "syncing", "paused", "offline", "error", "needs trust", "needs login", "needs pairing"}

// States returns every state, from calm to urgent.
func States() []State {
	all := make([]State, numStates)
	for i := range all {
		all[i] = State(i)
	}
	return all
}

// String returns the state's word ("up to date").
func (s State) String() string {
	if s < 0 || s >= numStates {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// MarshalText returns the state's word; a value outside the enum is an
// error.
func (s State) MarshalText() ([]byte, error) {
	if s < 0 || s >= numStates {
		return nil, fmt.Errorf("engine: unknown state %d", int(s))
	}
	return []byte(stateNames[s]), nil
}

// UnmarshalText parses a word MarshalText returns.
func (s *State) UnmarshalText(b []byte) error {
	st, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = st
	return nil
}

// ParseState returns the state whose word is name.
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if n == name {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("engine: unknown state %q", name)
}

// Heartbeat returns the state's name in the relay API's heartbeat.
func (s State) Heartbeat() string {
	switch s {
	case NotSynced, Starting, Syncing:
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

// PlatformState is where the connection to the platform stands. Its text
// form is the word status.json shows ("" before anything is known).
type PlatformState int

// The platform's states.
const (
	PlatformUnknown      PlatformState = iota // nothing known yet
	PlatformOK                                // the last request was answered
	PlatformUnreachable                       // the last request failed; retrying
	PlatformNeedsPairing                      // the platform refused the device token
	numPlatformStates
)

var platformNames = [numPlatformStates]string{"", "ok", "unreachable", "needs pairing"}

// PlatformStates returns every platform state.
func PlatformStates() []PlatformState {
	all := make([]PlatformState, numPlatformStates)
	for i := range all {
		all[i] = PlatformState(i)
	}
	return all
}

// String returns the state's word ("unreachable"; "unknown" for
// PlatformUnknown, whose text form is empty).
func (s PlatformState) String() string {
	switch {
	case s == PlatformUnknown:
		return "unknown"
	case s < 0 || s >= numPlatformStates:
		return fmt.Sprintf("PlatformState(%d)", int(s))
	}
	return platformNames[s]
}

// MarshalText returns the state's word ("" for PlatformUnknown); a value
// outside the enum is an error.
func (s PlatformState) MarshalText() ([]byte, error) {
	if s < 0 || s >= numPlatformStates {
		return nil, fmt.Errorf("engine: unknown platform state %d", int(s))
	}
	return []byte(platformNames[s]), nil
}

// UnmarshalText parses a word MarshalText returns.
func (s *PlatformState) UnmarshalText(b []byte) error {
	for i, n := range platformNames {
		if n == string(b) {
			*s = PlatformState(i)
			return nil
		}
	}
	return fmt.Errorf("engine: unknown platform state %q", b)
}

// PauseReason is a set of reasons why relaying is paused. The set is
// owned by its caller (connector.Runner, where each reason is set and
// cleared by its own owner); the engine only reports the set it was last
// paused with. In JSON it is a list of names (["user", "metered"]).
type PauseReason uint8

// The reasons. A new one must be added before pauseEnd, with its name in
// pauseNames.
const (
	PausedByUser    PauseReason = 1 << iota // the user paused relaying
	PausedOnMetered                         // the network connection is metered and the settings say to pause then
	pauseEnd
)

var pauseNames = map[PauseReason]string{PausedByUser: "user", PausedOnMetered: "metered"}

// PauseReasons returns every single reason.
func PauseReasons() []PauseReason {
	var all []PauseReason
	for r := PauseReason(1); r < pauseEnd; r <<= 1 {
		all = append(all, r)
	}
	return all
}

// Has reports whether the set holds every reason of r.
func (p PauseReason) Has(r PauseReason) bool { return r != 0 && p&r == r }

// Names returns the set's reasons' names, in the order of PauseReasons.
func (p PauseReason) Names() []string {
	var n []string
	for _, r := range PauseReasons() {
		if p.Has(r) {
			n = append(n, pauseNames[r])
		}
	}
	return n
}

// String returns the names joined by ", " ("user, metered"); "" for none.
func (p PauseReason) String() string { return strings.Join(p.Names(), ", ") }

// MarshalJSON returns the names as a JSON list.
func (p PauseReason) MarshalJSON() ([]byte, error) {
	n := p.Names()
	if n == nil {
		n = []string{}
	}
	return json.Marshal(n)
}

// UnmarshalJSON parses a list MarshalJSON returns; an unknown name is an
// error.
func (p *PauseReason) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return err
	}
	var set PauseReason
	for _, name := range names {
		found := false
		for r, n := range pauseNames {
			if n == name {
				set |= r
				found = true
			}
		}
		if !found {
			return fmt.Errorf("engine: unknown pause reason %q", name)
		}
	}
	*p = set
	return nil
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
	case errors.Is(err, imapsync.ErrAuth), errors.Is(err, ErrNoPassword):
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

// The engine's errors a front end acts on; check them with errors.Is. Their
// text says what is wrong, not which command fixes it: each front end adds
// its own way (a command, a button).
var (
	// ErrNotPaired means there is no platform or device token to relay to.
	ErrNotPaired = errors.New("this computer is not paired with the platform yet")
	// ErrNoAccount means there is no account to relay.
	ErrNoAccount = errors.New("no account is set up yet")
	// ErrNoPassword means an account's password is not in the keychain; its
	// folders are NeedsLogin.
	ErrNoPassword = errors.New("no password is stored for this account")
)

func passwordError(email string, err error) error {
	if errors.Is(err, keychain.ErrNotFound) {
		return fmt.Errorf("%s: %w", email, ErrNoPassword)
	}
	return fmt.Errorf("read the password of %s from the keychain: %w", email, err)
}
