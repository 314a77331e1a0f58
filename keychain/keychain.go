// Package keychain keeps Inbox Relay's secrets (mailbox passwords, the
// platform device token) in the operating system's keychain through
// github.com/zalando/go-keyring: the Secret Service on Linux (gnome-keyring,
// KWallet, KeePassXC), the login keychain on macOS, the Credential Manager
// on Windows. Secrets are never written anywhere else: when no keychain is
// usable, every call fails with an error wrapping ErrUnavailable.
package keychain

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	keyring "github.com/zalando/go-keyring"
)

// DeviceTokenKey is the key under which the platform device token is stored.
const DeviceTokenKey = "device-token"

// DefaultTimeout bounds each Store call unless WithTimeout says otherwise.
const DefaultTimeout = 10 * time.Second

// MaxSecretLen is the largest secret, in bytes, that Set accepts. macOS
// limits service+key+secret to about 3000 bytes and Windows a secret to
// 2560, so anything bigger must not even work on Linux.
const MaxSecretLen = 2000

// MaxKeyLen is the longest key, in bytes, that Set, Get and Delete accept.
const MaxKeyLen = 256

var (
	// ErrNotFound is wrapped by Get's error when no secret is stored under
	// the key.
	ErrNotFound = errors.New("keychain: secret not found")

	// ErrUnavailable is wrapped by every error that means the keychain
	// could not be used: no session bus or Secret Service, a locked
	// keyring that was not unlocked, a keychain that did not answer in
	// time, or any other failure reported by the keychain. The error's
	// message says what is missing and what the person should do. Nothing
	// is stored elsewhere instead.
	ErrUnavailable = errors.New("keychain: unavailable")

	// ErrInvalid is wrapped by the error for a call the keychain was never
	// asked about because its arguments are unusable: an empty, overlong or
	// non-UTF-8 key, or an empty or oversized secret.
	ErrInvalid = errors.New("keychain: invalid argument")
)

// AccountKey returns the key under which the mailbox password for email is
// stored: "account:" followed by email in lower case.
func AccountKey(email string) string {
	return "account:" + strings.ToLower(email)
}

// Store keeps secrets in the OS keychain, scoped to one home directory.
// Create it with New; the zero Store refuses every call with ErrInvalid.
// A Store is immutable and safe for concurrent use; calls from all Stores in
// the process are served one at a time (see Set).
type Store struct {
	service string
	timeout time.Duration
}

// Option configures a Store in New.
type Option func(*Store)

// WithTimeout bounds every call of the Store by d instead of DefaultTimeout.
// A d of zero or less keeps the default.
func WithTimeout(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// New returns a Store whose service name is "inboxrelay/" followed by the
// first 16 hex digits of the SHA-256 of the absolute, cleaned home path, so
// Stores of two homes never see each other's secrets while two Stores of
// the same home share them. home must not be empty; it need not exist.
// New does not contact the keychain.
func New(home string, opts ...Option) (*Store, error) {
	if home == "" {
		return nil, fmt.Errorf("keychain: empty home directory: %w", ErrInvalid)
	}
	abs, err := filepath.Abs(home)
	if err != nil {
		return nil, fmt.Errorf("keychain: resolve home %q: %w", home, err)
	}
	sum := sha256.Sum256([]byte(abs))
	s := &Store{
		service: "inboxrelay/" + hex.EncodeToString(sum[:])[:16],
		timeout: DefaultTimeout,
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Service returns the keychain service name under which the Store keeps its
// secrets, for diagnostics ("look for inboxrelay/… in Seahorse").
func (s *Store) Service() string { return s.service }

// Set stores secret under key, replacing any previous secret for that key.
// key must be non-empty valid UTF-8 of at most MaxKeyLen bytes; secret must
// be non-empty and at most MaxSecretLen bytes. Neither error messages nor
// anything else in this package ever contain the secret.
//
// Every call returns within the Store's timeout: when the keychain does not
// answer in time (typically a locked keyring waiting for an unlock prompt)
// it returns an error wrapping ErrUnavailable while the request is left
// pending in the background. Calls to one keychain (on Linux: one D-Bus
// session bus) are served one at a time, so at most one such abandoned
// request exists per keychain; while it is pending, other calls to that
// keychain wait for it within their own timeout, and calls to another
// keychain do not wait at all. A session bus that does not answer is
// noticed within the timeout without a request left behind.
func (s *Store) Set(key, secret string) error {
	if err := s.checkKey(key); err != nil {
		return fmt.Errorf("keychain: set %q: %w", key, err)
	}
	if secret == "" {
		return fmt.Errorf("keychain: set %q: refusing to store an empty secret (use Delete to remove one): %w", key, ErrInvalid)
	}
	if len(secret) > MaxSecretLen {
		return fmt.Errorf("keychain: set %q: secret is %d bytes, more than the %d a keychain can hold on every platform: %w", key, len(secret), MaxSecretLen, ErrInvalid)
	}
	_, err := s.call(func() (string, error) {
		return "", keyring.Set(s.service, key, secret)
	})
	if err != nil {
		return redact(fmt.Errorf("keychain: set %q: %w", key, err), secret)
	}
	return nil
}

// Get returns the secret stored under key. When there is none, the error
// wraps ErrNotFound; when the keychain cannot be used, it wraps
// ErrUnavailable. key is checked as in Set. Timeouts and concurrency are as
// described for Set.
func (s *Store) Get(key string) (string, error) {
	if err := s.checkKey(key); err != nil {
		return "", fmt.Errorf("keychain: get %q: %w", key, err)
	}
	secret, err := s.call(func() (string, error) {
		return keyring.Get(s.service, key)
	})
	if errors.Is(err, keyring.ErrNotFound) {
		return "", fmt.Errorf("keychain: get %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("keychain: get %q: %w", key, err)
	}
	return secret, nil
}

// Delete removes the secret stored under key. It returns nil when there was
// none. key is checked as in Set. Timeouts and concurrency are as described
// for Set.
func (s *Store) Delete(key string) error {
	if err := s.checkKey(key); err != nil {
		return fmt.Errorf("keychain: delete %q: %w", key, err)
	}
	_, err := s.call(func() (string, error) {
		return "", keyring.Delete(s.service, key)
	})
	if err != nil && !errors.Is(err, keyring.ErrNotFound) {
		return fmt.Errorf("keychain: delete %q: %w", key, err)
	}
	return nil
}

// gates serialise keychain calls, one slot per keychain (busKey). go-keyring
// has no cancellation, so a call that times out keeps its goroutine until
// the keychain answers; with one slot per keychain, at most one such
// goroutine exists per keychain however often callers retry, and a hung
// keychain holds up no other.
var gates = struct {
	sync.Mutex
	m map[string]chan struct{}
}{m: map[string]chan struct{}{}}

func gate(key string) chan struct{} {
	gates.Lock()
	defer gates.Unlock()
	g := gates.m[key]
	if g == nil {
		g = make(chan struct{}, 1)
		gates.m[key] = g
	}
	return g
}

// call runs op with the Store's timeout and turns its error into one of
// ours: keyring.ErrNotFound is passed through for the caller to map, every
// other failure wraps ErrUnavailable.
func (s *Store) call(op func() (string, error)) (string, error) {
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	slot := gate(busKey())
	select {
	case slot <- struct{}{}:
	case <-timer.C:
		return "", s.timeoutError()
	}

	type result struct {
		secret string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-slot }()
		defer func() {
			// go-keyring type-asserts D-Bus replies; a misbehaving Secret
			// Service must not take the whole process down.
			if p := recover(); p != nil {
				done <- result{err: unavailable("the keychain returned a reply that could not be understood (%v): restart your keyring service and try again", p)}
			}
		}()
		if err := preflight(s.timeout); err != nil {
			done <- result{err: err}
			return
		}
		secret, err := op()
		done <- result{secret, err}
	}()

	select {
	case r := <-done:
		if r.err == nil || errors.Is(r.err, keyring.ErrNotFound) || errors.Is(r.err, ErrUnavailable) {
			return r.secret, r.err
		}
		return "", classify(r.err)
	case <-timer.C:
		return "", s.timeoutError()
	}
}

func (s *Store) timeoutError() error {
	return unavailable("the keychain did not answer within %s; unlock it (it may be waiting for a password prompt) and try again", s.timeout)
}

func (s *Store) checkKey(key string) error {
	switch {
	case s.service == "" || s.timeout <= 0:
		return fmt.Errorf("Store not created with New: %w", ErrInvalid)
	case key == "":
		return fmt.Errorf("empty key: %w", ErrInvalid)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("key is %d bytes, more than %d: %w", len(key), MaxKeyLen, ErrInvalid)
	case !utf8.ValidString(key) || strings.ContainsRune(key, 0):
		// D-Bus drops the whole connection on a string that is not valid
		// UTF-8 or contains NUL.
		return fmt.Errorf("key is not valid UTF-8 text: %w", ErrInvalid)
	}
	return nil
}

// unavailableError is a message for a person that wraps ErrUnavailable
// without ErrUnavailable's own text.
type unavailableError struct{ msg string }

func unavailable(format string, args ...any) error {
	return &unavailableError{msg: fmt.Sprintf(format, args...)}
}

func (e *unavailableError) Error() string        { return e.msg }
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

// redact guarantees that err's message does not contain secret. Our own
// messages never include it; this guards against a keychain that echoes
// what it was sent.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), secret, "[secret]"), err: err}
}

// redactedError keeps errors.Is working without exposing, through Unwrap,
// the error whose message contains the secret.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string        { return e.msg }
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }
