// Package mailserver is the mailbox of `inboxrelay demo`: an in-process IMAP
// and SMTP server for one user, both over implicit TLS on the loopback
// interface with a fresh self-signed certificate, seeded with a sample
// customer-success mailbox.
//
// It is built on go-imap v2's imapmemserver (with IDLE reimplemented, see
// session) and go-smtp's server, so it shares their limits: no CONDSTORE,
// QRESYNC or ID; LIST never returns SPECIAL-USE attributes (clients find
// "Sent" by name); only PLAIN authentication. It is a demonstration peer,
// not a stand-in for Dovecot.
package mailserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-smtp"
)

// Mailbox names. The in-memory server cannot mark Sent with the \Sent
// SPECIAL-USE attribute (RFC 6154), so clients must find it by this name.
const (
	Inbox = "INBOX"
	Sent  = "Sent"
)

// ErrClosed is returned by Deliver once the server is closed.
var ErrClosed = errors.New("mailserver: closed")

// Options configures Start. Email and Password are required.
type Options struct {
	// Email and Password are the one user's credentials, for IMAP (LOGIN
	// and AUTHENTICATE PLAIN) and SMTP (AUTH PLAIN). Email is also the
	// address the sample mail is written to and sent from, and the only
	// envelope sender SMTP accepts.
	Email, Password string

	// Dir is reserved for state on disk; the server writes nothing and
	// keeps everything, certificate included, in memory.
	Dir string

	// NewMailEvery, when positive, makes a new sample customer message
	// arrive in INBOX at that interval, as Deliver would. Zero: never.
	NewMailEvery time.Duration

	// Now is the clock for message dates: the sample mailbox spans the 30
	// days before Now() at Start, and new mail is dated Now(). Nil means
	// time.Now. The certificate's validity always uses the real clock.
	Now func() time.Time

	// Seed selects the sample mailbox: the same Seed, Email and Now()
	// give byte-identical messages.
	Seed uint64

	// Logger receives the servers' internal errors (failed handshakes,
	// broken connections). Nil discards them.
	Logger *log.Logger
}

// Delivery is one message accepted over SMTP.
type Delivery struct {
	From     string    // envelope sender (MAIL FROM)
	To       []string  // envelope recipients (RCPT TO), in order
	Data     []byte    // the message as received after DATA, CRLF line ends
	Received time.Time // Options.Now() when DATA completed
}

// Server is a running demo mailbox. Its methods are safe for concurrent use.
type Server struct {
	now    func() time.Time
	email  string
	pass   string
	logger *log.Logger
	fp     string

	user           *imapmemserver.User
	idlers         idlers
	imapSrv        *imapserver.Server
	smtpSrv        *smtp.Server
	imapLn, smtpLn net.Listener
	seedIn, seedSt [][]byte

	mu       sync.Mutex
	outgoing []Delivery
	serveErr error // first unexpected failure of a listener

	wg        sync.WaitGroup
	closing   chan struct{} // closed when shutdown starts
	done      chan struct{} // closed when shutdown has finished
	closeOnce sync.Once
	closeErr  error
	stopCtx   func() bool
}

// Start seeds the mailbox, starts the IMAP and SMTP listeners on
// 127.0.0.1 (random ports, implicit TLS, one fresh self-signed certificate
// valid for 127.0.0.1, ::1 and localhost) and returns once both accept
// connections. The server runs until Close is called or ctx is done.
//
// The seeded mailbox holds SampleConversations customer conversations: INBOX
// has SampleInbox messages (every conversation's first message plus
// SampleFollowUps customer follow-ups) in date order, Sent has SampleReplies
// replies from the user. UIDVALIDITY is 1 for INBOX and 2 for Sent on every
// Start, so a client keeping state across runs must key it by Fingerprint,
// which is new each time.
func Start(ctx context.Context, o Options) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if o.Email == "" || !strings.Contains(o.Email, "@") || o.Password == "" {
		return nil, errors.New("mailserver: Options.Email (an address) and Options.Password are required")
	}
	s := &Server{
		now:     o.Now,
		email:   o.Email,
		pass:    o.Password,
		logger:  o.Logger,
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = log.New(io.Discard, "", 0)
	}

	cert, err := newCertificate(time.Now())
	if err != nil {
		return nil, fmt.Errorf("mailserver: create certificate: %w", err)
	}
	sum := sha256.Sum256(cert.Certificate[0])
	s.fp = hex.EncodeToString(sum[:])
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	gen := newGenerator(o.Seed, o.Email)
	inbox, sent := gen.mailbox(s.now())
	if err := s.seed(inbox, sent); err != nil {
		return nil, err
	}

	s.imapSrv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &session{srv: s}, nil, nil
		},
		// IMAP4rev1 plus what imapmemserver implements, as a typical
		// provider advertises it; IDLE, UNSELECT, ENABLE, SASL-IR and
		// AUTH=PLAIN are added by imapserver itself.
		Caps: imap.CapSet{
			imap.CapIMAP4rev1:    {},
			imap.CapNamespace:    {},
			imap.CapUIDPlus:      {},
			imap.CapMove:         {},
			imap.CapESearch:      {},
			imap.CapListExtended: {},
			imap.CapListStatus:   {},
			imap.CapStatusSize:   {},
		},
		Logger:    s.logger,
		TLSConfig: nil, // implicit TLS on the listener, no STARTTLS
	})

	s.smtpSrv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &smtpSession{srv: s}, nil
	}))
	s.smtpSrv.Domain = "localhost"
	s.smtpSrv.MaxMessageBytes = 25 << 20
	s.smtpSrv.MaxRecipients = 100
	s.smtpSrv.ReadTimeout = 2 * time.Minute
	s.smtpSrv.WriteTimeout = 2 * time.Minute
	s.smtpSrv.AllowInsecureAuth = false
	s.smtpSrv.ErrorLog = s.logger

	if s.imapLn, err = tls.Listen("tcp", "127.0.0.1:0", tlsConfig); err != nil {
		return nil, fmt.Errorf("mailserver: listen for IMAP: %w", err)
	}
	if s.smtpLn, err = tls.Listen("tcp", "127.0.0.1:0", tlsConfig); err != nil {
		s.imapLn.Close()
		return nil, fmt.Errorf("mailserver: listen for SMTP: %w", err)
	}

	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.served("IMAP", s.imapSrv.Serve(s.imapLn))
	}()
	go func() {
		defer s.wg.Done()
		s.served("SMTP", s.smtpSrv.Serve(s.smtpLn))
	}()
	if o.NewMailEvery > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.newMail(gen, o.NewMailEvery)
		}()
	}
	s.stopCtx = context.AfterFunc(ctx, func() { _ = s.Close() })
	return s, nil
}

// seed creates INBOX and Sent, in that order (UIDVALIDITY 1 and 2), and
// appends the sample messages.
func (s *Server) seed(inbox, sent []sample) error {
	s.user = imapmemserver.NewUser(s.email, s.pass)
	for _, box := range []struct {
		name string
		msgs []sample
		keep *[][]byte
	}{{Inbox, inbox, &s.seedIn}, {Sent, sent, &s.seedSt}} {
		if err := s.user.Create(box.name, nil); err != nil {
			return fmt.Errorf("mailserver: create %q: %w", box.name, err)
		}
		if err := s.user.Subscribe(box.name); err != nil {
			return fmt.Errorf("mailserver: subscribe %q: %w", box.name, err)
		}
		for _, m := range box.msgs {
			opts := &imap.AppendOptions{Time: m.received, Flags: m.flags}
			if _, err := s.user.Append(box.name, bytes.NewReader(m.raw), opts); err != nil {
				return fmt.Errorf("mailserver: append to %q: %w", box.name, err)
			}
			*box.keep = append(*box.keep, m.raw)
		}
	}
	return nil
}

// served records why a listener stopped and, if it was not Close, shuts
// the whole server down: half a mail server is worse than none.
func (s *Server) served(what string, err error) {
	select {
	case <-s.closing:
		return
	default:
	}
	if err == nil {
		err = errors.New("stopped accepting connections")
	}
	s.mu.Lock()
	if s.serveErr == nil {
		s.serveErr = fmt.Errorf("mailserver: %s listener: %w", what, err)
	}
	s.mu.Unlock()
	go s.Close()
}

func (s *Server) newMail(gen *generator, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
			m := gen.fresh(s.now())
			if err := s.Deliver(m.raw, m.received); err != nil && !errors.Is(err, ErrClosed) {
				s.logger.Printf("mailserver: deliver new sample mail: %v", err)
			}
		}
	}
}

// IMAPAddr returns the IMAP listener's address ("127.0.0.1:port"); it
// speaks TLS from the first byte (implicit TLS, RFC 8314).
func (s *Server) IMAPAddr() string { return s.imapLn.Addr().String() }

// SMTPAddr returns the SMTP submission listener's address
// ("127.0.0.1:port"), implicit TLS (RFC 8314). AUTH PLAIN is required
// before MAIL.
func (s *Server) SMTPAddr() string { return s.smtpLn.Addr().String() }

// Fingerprint returns the lowercase hex SHA-256 of the DER of the
// certificate both listeners present. It changes on every Start.
func (s *Server) Fingerprint() string { return s.fp }

// Deliver appends msg to INBOX as newly arrived mail, with date as its
// INTERNALDATE (zero: Options.Now()). msg should be an RFC 5322 message
// with CRLF line ends; it is stored as given. Every session that has INBOX
// selected is told of the new message (EXISTS), immediately if it is
// IDLE. Deliver returns ErrClosed once Close has started.
func (s *Server) Deliver(msg []byte, date time.Time) error {
	select {
	case <-s.closing:
		return ErrClosed
	default:
	}
	if date.IsZero() {
		date = s.now()
	}
	if _, err := s.user.Append(Inbox, bytes.NewReader(msg), &imap.AppendOptions{Time: date}); err != nil {
		return fmt.Errorf("mailserver: deliver to %s: %w", Inbox, err)
	}
	s.idlers.wake()
	return nil
}

// Outgoing returns a copy of the messages accepted over SMTP, oldest first.
// Like a real submission server, the server does not file them in Sent.
func (s *Server) Outgoing() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, len(s.outgoing))
	for i, d := range s.outgoing {
		out[i] = Delivery{From: d.From, To: append([]string(nil), d.To...), Data: bytes.Clone(d.Data), Received: d.Received}
	}
	return out
}

// Seeded returns copies of the messages Start put in INBOX and in Sent, in
// UID order (UID i+1 is element i). Later arrivals are not included.
func (s *Server) Seeded() (inbox, sent [][]byte) {
	clone := func(l [][]byte) [][]byte {
		c := make([][]byte, len(l))
		for i, b := range l {
			c[i] = bytes.Clone(b)
		}
		return c
	}
	return clone(s.seedIn), clone(s.seedSt)
}

// Done returns a channel closed once the server has shut down, after Close,
// after ctx was done, or after a listener failed.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops the listeners, closes every connection, stops new mail and
// waits for the server's goroutines. It is idempotent: every call returns
// the same result, the error that stopped a listener unexpectedly, if any.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		if s.stopCtx != nil {
			s.stopCtx()
		}
		// Closing the listeners ends Serve; only then close the servers
		// (and their connections): Serve registers its listener with the
		// server, and a Close racing with it is a data race in go-imap.
		_ = s.imapLn.Close()
		_ = s.smtpLn.Close()
		s.wg.Wait()
		_ = s.imapSrv.Close()
		_ = s.smtpSrv.Close()
		s.mu.Lock()
		s.closeErr = s.serveErr
		s.mu.Unlock()
		close(s.done)
	})
	<-s.done
	return s.closeErr
}

// checkLogin reports whether username and password are the user's.
func (s *Server) checkLogin(username, password string) bool {
	u := subtle.ConstantTimeCompare([]byte(username), []byte(s.email))
	p := subtle.ConstantTimeCompare([]byte(password), []byte(s.pass))
	return u&p == 1
}

func (s *Server) record(d Delivery) {
	s.mu.Lock()
	s.outgoing = append(s.outgoing, d)
	s.mu.Unlock()
}
