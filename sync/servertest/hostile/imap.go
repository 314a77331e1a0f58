package hostile

import (
	"bufio"
	"crypto/tls"
	"io"
	"log"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// IMAPOptions shape the minimal IMAP server StartIMAP runs.
type IMAPOptions struct {
	// Cert is the server certificate; a fresh CA-issued one when nil.
	Cert *Cert
	// MinTLS and MaxTLS bound the TLS versions offered (tls.VersionTLS10
	// ...); zero keeps Go's defaults. MaxTLS tls.VersionTLS10 with MinTLS
	// tls.VersionTLS10 is a TLS 1.0-only server.
	MinTLS, MaxTLS uint16
	// SentName is the name of the Sent folder, created without any
	// SPECIAL-USE attribute; "Sent" when empty. A non-ASCII name travels in
	// modified UTF-7 (RFC 3501 5.1.3).
	SentName string
	// CloseAfter, when not zero, closes every connection that long after it
	// was accepted, as servers with short idle timeouts do.
	CloseAfter time.Duration
	// RefuseBodies lists UIDs whose body a FETCH never returns: the others
	// asked for come, then the command ends in a tagged NO "The requested
	// message could not be converted to RFC822 format.", as Exchange does
	// for a message it cannot convert. The connection stays open.
	RefuseBodies []uint32
}

// IMAPServer is a running minimal IMAP server: go-imap's in-memory server
// behind implicit TLS, advertising only IMAP4rev1 (no IDLE, no
// SPECIAL-USE, no UIDPLUS, no NAMESPACE) and the "/" delimiter.
type IMAPServer struct {
	Addr     string // host:port of the implicit-TLS listener
	Cert     *Cert
	User     string
	Password string
	SentName string

	user *imapmemserver.User
}

// StartIMAP starts a minimal IMAP server with one user, User/Password,
// holding INBOX and the Sent folder. It stops at the end of the test.
func StartIMAP(t testing.TB, o IMAPOptions) *IMAPServer {
	t.Helper()
	if o.Cert == nil {
		o.Cert = NewCert(t, CertOptions{})
	}
	if o.SentName == "" {
		o.SentName = "Sent"
	}
	s := &IMAPServer{Cert: o.Cert, User: "alice@acme.test", Password: "correct horse battery", SentName: o.SentName}
	mem := imapmemserver.New()
	s.user = imapmemserver.NewUser(s.User, s.Password)
	for _, f := range []string{"INBOX", o.SentName} {
		if err := s.user.Create(f, nil); err != nil {
			t.Fatal(err)
		}
	}
	mem.AddUser(s.user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			if len(o.RefuseBodies) > 0 {
				return &refusingSession{Session: mem.NewSession(), refuse: o.RefuseBodies}, nil, nil
			}
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: true, // the listener is TLS: imapserver does not know it
		Logger:       log.New(io.Discard, "", 0),
	})
	l, err := tls.Listen("tcp", net.JoinHostPort(Host, "0"), &tls.Config{
		Certificates: []tls.Certificate{o.Cert.TLS}, MinVersion: o.MinTLS, MaxVersion: o.MaxTLS,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	var ln net.Listener = l
	if o.CloseAfter > 0 {
		ln = &closingListener{Listener: l, after: o.CloseAfter}
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
		if cl, ok := ln.(*closingListener); ok {
			cl.wait()
		}
	})
	return s
}

// refusingSession refuses the bodies of some UIDs (IMAPOptions.RefuseBodies).
type refusingSession struct {
	imapserver.Session
	refuse []uint32
}

// ErrNotConverted is the NO a refusingSession answers, in Exchange's words.
var ErrNotConverted = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "The requested message could not be converted to RFC822 format."}

func (s *refusingSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	uids, ok := numSet.(imap.UIDSet)
	if !ok || len(options.BodySection) == 0 {
		return s.Session.Fetch(w, numSet, options)
	}
	var keep imap.UIDSet
	refused := false
	for _, r := range uids {
		if r.Stop == 0 || r.Stop < r.Start { // "n:*": not what the connector asks
			return s.Session.Fetch(w, numSet, options)
		}
		for u := r.Start; u <= r.Stop; u++ {
			if slices.Contains(s.refuse, uint32(u)) {
				refused = true
			} else {
				keep.AddNum(u)
			}
		}
	}
	if len(keep) > 0 {
		if err := s.Session.Fetch(w, keep, options); err != nil {
			return err
		}
	}
	if refused {
		return ErrNotConverted
	}
	return nil
}

// Append puts msg into folder with date as its INTERNALDATE.
func (s *IMAPServer) Append(t testing.TB, folder string, msg []byte, date time.Time) {
	t.Helper()
	if _, err := s.user.Append(folder, literal{strings.NewReader(string(msg)), int64(len(msg))}, &imap.AppendOptions{Time: date}); err != nil {
		t.Fatal(err)
	}
}

type literal struct {
	io.Reader
	n int64
}

func (l literal) Size() int64 { return l.n }

// closingListener closes each accepted connection after a while.
type closingListener struct {
	net.Listener
	after  time.Duration
	timers sync.WaitGroup
}

func (l *closingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.timers.Add(1)
	t := time.AfterFunc(l.after, func() { c.Close(); l.timers.Done() })
	_ = t
	return c, nil
}

func (l *closingListener) wait() { l.timers.Wait() }

// StartTLSMode is how StartTLSServer misbehaves.
type StartTLSMode int

// The misbehaviours of StartTLSServer.
const (
	// Strip removes STARTTLS from the capabilities and answers the
	// command BAD, as a downgrading middlebox does.
	Strip StartTLSMode = iota
	// Inject answers STARTTLS OK and sends a forged untagged response in
	// the same packet, before the TLS handshake (CVE-2011-0411 style).
	Inject
	// Preauth greets with PREAUTH on the plaintext connection (RFC 3501
	// 7.1.4), then accepts STARTTLS and performs a real handshake.
	Preauth
	// HugeAfterTLS behaves until the TLS handshake, then answers the first
	// command with a 64 MiB line, where no plain-text wrapper sees it.
	HugeAfterTLS
)

// StartTLSServer starts a plaintext IMAP listener that misbehaves as mode
// says; after a successful handshake it speaks no further. It returns
// host:port.
func StartTLSServer(t testing.TB, mode StartTLSMode, cert *Cert) string {
	t.Helper()
	if cert == nil {
		cert = NewCert(t, CertOptions{})
	}
	l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	serveEach(t, l, 30*time.Second, func(c net.Conn) { scriptStartTLS(c, mode, cert) })
	return l.Addr().String()
}

func scriptStartTLS(c net.Conn, mode StartTLSMode, cert *Cert) {
	w := func(s string) { io.WriteString(c, s) }
	if mode == Preauth {
		w("* PREAUTH IMAP4rev1 server logged in as alice\r\n")
	} else {
		w("* OK IMAP4rev1 hostile server ready\r\n")
	}
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		tag, cmd := f[0], strings.ToUpper(f[1])
		switch {
		case cmd == "CAPABILITY" && mode == Strip:
			w("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + " OK done\r\n")
		case cmd == "CAPABILITY":
			w("* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n" + tag + " OK done\r\n")
		case cmd == "STARTTLS" && mode == Strip:
			w(tag + " BAD unknown command\r\n")
		case cmd == "STARTTLS" && mode == Inject:
			w(tag + " OK begin TLS now\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n")
			tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert.TLS}}).Handshake()
			return
		case cmd == "STARTTLS":
			w(tag + " OK begin TLS now\r\n")
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert.TLS}})
			if tc.Handshake() != nil {
				return
			}
			if mode == HugeAfterTLS {
				if _, err := bufio.NewReader(tc).ReadString('\n'); err != nil {
					return
				}
				io.WriteString(tc, "* CAPABILITY IMAP4rev1 ")
				chunk := []byte(strings.Repeat("A", 64<<10))
				for i := 0; i < 1024; i++ {
					if _, err := tc.Write(chunk); err != nil {
						return
					}
				}
				return
			}
			io.Copy(io.Discard, tc)
			return
		case cmd == "LOGOUT":
			w("* BYE\r\n" + tag + " OK bye\r\n")
			return
		default:
			w(tag + " BAD not here\r\n")
		}
	}
}
