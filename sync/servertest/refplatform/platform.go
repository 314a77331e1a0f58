// Package refplatform is a reference implementation of the platform side of
// the relay API, version 1 (relay-api.md): pairing, message upload, the
// optional key check, the outbox and the heartbeat.
//
// It is written from the contract alone and imports nothing else from the
// project, so a mistake in the connector cannot hide in both sides. It is
// deliberately strict: every request that strays from the contract is
// refused with a 4xx status and a one-line plain-text reason, and recorded
// (see [Platform.Rejections]) so that tests can assert that none happened.
//
// The platform keeps its state in memory; only message bodies go to disk,
// streamed, never held whole in memory.
package refplatform

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxBodySize is the largest message body (after decompression) that
// a new Platform accepts; a larger one is answered 413.
const DefaultMaxBodySize = 64 << 20

// DefaultLease is how long an outbox item offered to a device stays leased
// to it before it is offered again, unless a result was reported.
const DefaultLease = 10 * time.Minute

// ErrClosed is returned by [Platform.Start] and [Platform.Wait] once the
// platform is closed.
var ErrClosed = errors.New("refplatform: platform closed")

// Platform is an in-process reference platform. All its methods are safe for
// concurrent use, including while requests are being served.
type Platform struct {
	dir     string
	handler http.Handler

	inflight sync.WaitGroup // requests being served; Add only under mu while open
	done     chan struct{}  // closed by Close: ends long polls
	parked   atomic.Int32   // long polls waiting; tests watch it

	mu          sync.Mutex
	closed      bool
	change      chan struct{}   // closed and replaced on every state change
	codes       map[string]bool // pairing code → already used
	devices     []*device
	tokens      map[string]*device
	messages    map[string]*Message
	order       []string // message keys in the order they were stored
	uploads     int
	fault       fault
	maxBody     int64
	checkOff    bool
	settings    Settings
	heartbeats  []Heartbeat
	outbox      map[string]*outboxEntry
	outboxOrder []string
	lease       time.Duration
	rejections  []Rejection
	intercept   func(http.ResponseWriter, *http.Request) bool

	// Set once by Start.
	srv      *http.Server
	serveErr chan error
	url      string
	caPEM    []byte
}

// Device is a paired connector, as it described itself when pairing.
type Device struct {
	ID       string
	Name     string
	OS       string
	Version  string
	PairedAt time.Time
	Revoked  bool // by RevokeAll: its token answers 401
	Removed  bool // by RemoveDevice: its token answers 403
}

type device struct {
	Device
	token string
}

// Message is a stored message: the metadata of its first accepted upload.
// The body lives on disk at Path and stays there after Close.
type Message struct {
	Key          string // lowercase hex SHA-256 of the body
	Account      string
	Mailbox      string // "inbox" or "sent"
	Folder       string // Relay-Folder, percent-decoded
	UID          uint32
	UIDValidity  uint32
	InternalDate time.Time
	Flags        []string // empty when Relay-Flags was empty
	Size         int64    // body bytes, after decompression
	Gzip         bool     // the first upload was sent with Content-Encoding: gzip
	DeviceID     string
	StoredAt     time.Time
	Accepted     int // uploads of this key answered 200 or 201
	Path         string
}

// Open opens the stored body for reading. The caller closes it.
func (m Message) Open() (*os.File, error) { return os.Open(m.Path) }

// Settings are the settings returned in heartbeat responses. A nil field is
// left out; an empty, non-nil RelayDomains is sent as []. The zero value
// means no settings: the response is then {}.
type Settings struct {
	BackfillDays *int
	RelayDomains []string
}

// Heartbeat is a received heartbeat, decoded.
type Heartbeat struct {
	DeviceID   string
	ReceivedAt time.Time
	Version    string
	OS         string
	Accounts   []AccountStatus
}

// AccountStatus is one account of a heartbeat.
type AccountStatus struct {
	Email    string
	State    string    // syncing, idle, paused, error, needs_login or needs_trust
	LastSync time.Time // zero when the connector sent none
	Backlog  int
	Rejected int
	Error    string
}

// Rejection is a request the platform refused (status 400 and up), other
// than the failures injected by FailNext.
type Rejection struct {
	At       time.Time
	Method   string
	Path     string
	DeviceID string // empty when the request was not authenticated
	Status   int
	Reason   string
}

type fault struct {
	n          int
	status     int
	retryAfter time.Duration
}

// New returns a platform that stores message bodies in dir, creating it if
// needed. Dir should be dedicated to the platform; files in it named like
// stored messages may be overwritten. Serve it with [Platform.Start] or
// mount [Platform.Handler] on a server of your own; either way call
// [Platform.Close] when done.
func New(dir string) (*Platform, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create message directory: %w", err)
	}
	p := &Platform{
		dir:      dir,
		done:     make(chan struct{}),
		change:   make(chan struct{}),
		codes:    make(map[string]bool),
		tokens:   make(map[string]*device),
		messages: make(map[string]*Message),
		outbox:   make(map[string]*outboxEntry),
		maxBody:  DefaultMaxBodySize,
		lease:    DefaultLease,
	}
	p.handler = p.newHandler()
	return p, nil
}

// Close stops the platform: long polls end with 204, requests arriving from
// now on get 503, and Close returns once every request being served has
// finished (a stalled upload is cut after a few seconds). Message bodies
// stay in dir, and the accessors keep answering. Close is idempotent.
func (p *Platform) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.changedLocked()
	srv := p.srv
	p.mu.Unlock()

	var err error
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if serr := srv.Shutdown(ctx); serr != nil {
			err = srv.Close()
		}
		cancel()
		if serr := <-p.serveErr; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}
	p.inflight.Wait()
	return err
}

// Wait blocks until cond returns true, ctx is done (ctx.Err()) or the
// platform is closed with cond still false (ErrClosed). Cond is evaluated
// at once and again after every change to what the accessors report (and
// every setter call), never concurrently with itself and with no lock held,
// so it may call the accessors. The mere passing of time, such as a lease
// running out, is not a change.
func (p *Platform) Wait(ctx context.Context, cond func() bool) error {
	for {
		p.mu.Lock()
		ch, closed := p.change, p.closed
		p.mu.Unlock()
		// ch is taken before cond runs, so a change after cond is never missed.
		if cond() {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// changedLocked wakes Wait and long polls. Call with mu held.
func (p *Platform) changedLocked() {
	close(p.change)
	p.change = make(chan struct{})
}

// NewPairingCode returns a new one-time pairing code (like "K7QX-M2PA").
// POST /v1/pair with it succeeds once; afterwards it answers 410.
func (p *Platform) NewPairingCode() string {
	t := rand.Text()
	code := t[:4] + "-" + t[4:8]
	p.mu.Lock()
	defer p.mu.Unlock()
	p.codes[code] = false
	p.changedLocked()
	return code
}

// Devices returns the paired devices in pairing order.
func (p *Platform) Devices() []Device {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Device, len(p.devices))
	for i, d := range p.devices {
		out[i] = d.Device
	}
	return out
}

// RevokeAll revokes every token issued so far: they answer 401 from now on.
// Pairing again with a new code yields a working token.
func (p *Platform) RevokeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.devices {
		d.Revoked = true
	}
	p.changedLocked()
}

// RemoveDevice removes a paired device: its token answers 403 ("device
// removed") from now on. It reports whether the device existed.
func (p *Platform) RemoveDevice(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.devices {
		if d.ID == id {
			d.Removed = true
			p.changedLocked()
			return true
		}
	}
	return false
}

// Messages returns the stored messages in the order they were stored.
// The result is a copy.
func (p *Platform) Messages() []Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Message, len(p.order))
	for i, k := range p.order {
		out[i] = *p.messages[k]
		out[i].Flags = slices.Clone(out[i].Flags)
	}
	return out
}

// Message returns the stored message with the given key.
func (p *Platform) Message(key string) (Message, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.messages[key]
	if !ok {
		return Message{}, false
	}
	out := *m
	out.Flags = slices.Clone(m.Flags)
	return out, true
}

// Uploads returns how many POST /v1/messages requests were received, whatever
// their outcome: duplicates, rejections and injected failures included.
func (p *Platform) Uploads() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.uploads
}

// FailNext makes the next n POST /v1/messages requests from authenticated
// devices answer status, with a Retry-After header (in whole seconds, rounded
// up) when retryAfter > 0, without validating or storing anything. It
// replaces any failures still pending; n <= 0 cancels them. Status must be
// between 200 and 599.
func (p *Platform) FailNext(n int, status int, retryAfter time.Duration) {
	if status < 200 || status > 599 {
		panic(fmt.Sprintf("refplatform: FailNext with status %d", status))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = fault{n: max(n, 0), status: status, retryAfter: retryAfter}
	p.changedLocked()
}

// takeFault consumes one injected failure, if any is pending.
func (p *Platform) takeFault() (fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fault.n == 0 {
		return fault{}, false
	}
	p.fault.n--
	return p.fault, true
}

// Intercept installs f as a hook that sees every request before the
// platform routes it, to make the platform misbehave in ways the contract
// code never would: answer heartbeats 503, hold a request and answer 401,
// redirect, or be slow. When f returns true it has answered the request
// and the platform does nothing more with it: nothing is stored, counted
// (not even by Uploads) or recorded as a rejection. When f returns false
// the request is served as usual; f must then not have written a response
// nor read the body. f runs on the request's goroutine, concurrently for
// concurrent requests; it may block, but must return once the request's
// context is done, or Close waits for it. A nil f removes the hook. It
// applies to requests that arrive from now on; requests after Close get 503
// without reaching it.
func (p *Platform) Intercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.intercept = f
}

// SetMaxBodySize sets the largest message body accepted, after
// decompression; larger ones are answered 413. n <= 0 restores
// DefaultMaxBodySize. It applies to requests that start from now on.
func (p *Platform) SetMaxBodySize(n int64) {
	if n <= 0 {
		n = DefaultMaxBodySize
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxBody = n
}

// SetCheckSupported turns POST /v1/messages/check on (the default) or off;
// when off it answers 404, as from a platform that does not offer it.
func (p *Platform) SetCheckSupported(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checkOff = !on
	p.changedLocked()
}

// SetSettings sets the settings returned in heartbeat responses from now on.
// The zero Settings clears them.
func (p *Platform) SetSettings(s Settings) {
	if s.BackfillDays != nil {
		days := *s.BackfillDays
		s.BackfillDays = &days
	}
	s.RelayDomains = slices.Clone(s.RelayDomains)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.settings = s
	p.changedLocked()
}

// Heartbeats returns the heartbeats received, oldest first.
func (p *Platform) Heartbeats() []Heartbeat {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Clone(p.heartbeats)
	for i := range out {
		out[i].Accounts = slices.Clone(out[i].Accounts)
	}
	return out
}

// Rejections returns the requests refused so far, oldest first. A connector
// that speaks the contract correctly causes none, except those a test
// provokes (RevokeAll, RemoveDevice, a used pairing code, an item the
// platform considers invalid).
func (p *Platform) Rejections() []Rejection {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.rejections)
}

func (p *Platform) reject(r *http.Request, deviceID string, status int, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rejections = append(p.rejections, Rejection{
		At:       time.Now(),
		Method:   r.Method,
		Path:     r.URL.Path,
		DeviceID: deviceID,
		Status:   status,
		Reason:   reason,
	})
	p.changedLocked()
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}

func isKey(s string) bool {
	if len(s) != 64 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return (r < '0' || r > '9') && (r < 'a' || r > 'f')
	}) < 0
}
