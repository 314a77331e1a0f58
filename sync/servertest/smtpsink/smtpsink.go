// Package smtpsink is a go-smtp submission server for tests, standing in
// for the SMTP server of a mail system whose test packages have none (the
// Cyrus and Courier-IMAP packages ship no SMTP server). It is a fake only
// in that it delivers nowhere: it speaks real SMTP through go-smtp, over
// implicit TLS (RFC 8314) with a self-signed certificate that clients pin,
// demands AUTH PLAIN with one login and password before MAIL, and records
// each message it accepts.
package smtpsink

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/inboxrelay/inboxrelay/sync/servertest/hostile"
)

// Delivery is one message the sink accepted.
type Delivery struct {
	From string   // MAIL FROM address
	To   []string // RCPT TO addresses
	Data []byte   // the message as received, CRLF line ends
}

// Server is a running sink. Its fields never change; its methods are safe
// for concurrent use.
type Server struct {
	Addr        string // 127.0.0.1:port, implicit TLS
	Fingerprint string // SHA-256 of the certificate, as trust pins it

	login, password string

	mu        sync.Mutex
	delivered []Delivery
	auths     int // successful logins
}

// Start starts a sink that accepts login with password only, with a fresh
// self-signed certificate; t.Cleanup stops it.
func Start(t testing.TB, login, password string) *Server {
	t.Helper()
	return StartWithCert(t, login, password, hostile.NewCert(t, hostile.CertOptions{SelfSigned: true}))
}

// StartWithCert is Start with the server certificate cert (self-signed,
// CA-issued, CN-only: whatever a test needs to meet).
func StartWithCert(t testing.TB, login, password string, cert *hostile.Cert) *Server {
	t.Helper()
	s := &Server{Fingerprint: cert.Fingerprint, login: login, password: password}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{s: s}, nil
	}))
	srv.Domain = "sink.localhost"
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}
	l, err := tls.Listen("tcp", net.JoinHostPort(hostile.Host, "0"), srv.TLSConfig)
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l) // returns when closed
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return s
}

// Delivered returns the messages accepted so far, oldest first.
func (s *Server) Delivered() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, len(s.delivered))
	for i, d := range s.delivered {
		out[i] = Delivery{From: d.From, To: append([]string(nil), d.To...), Data: bytes.Clone(d.Data)}
	}
	return out
}

// Logins returns how many times a client authenticated.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auths
}

type session struct {
	s      *Server
	authed bool
	cur    Delivery
}

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if (identity != "" && identity != user) || user != ss.s.login || pass != ss.s.password {
			return errors.New("invalid credentials")
		}
		ss.authed = true
		ss.s.mu.Lock()
		ss.s.auths++
		ss.s.mu.Unlock()
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.cur = Delivery{From: from}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.cur.To = append(ss.cur.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.cur.Data = b
	ss.s.mu.Lock()
	ss.s.delivered = append(ss.s.delivered, ss.cur)
	ss.s.mu.Unlock()
	ss.cur = Delivery{}
	return nil
}

func (ss *session) Reset()        { ss.cur = Delivery{} }
func (ss *session) Logout() error { return nil }
