package dovecottest

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Delivery is one message Dovecot's submission service relayed.
type Delivery struct {
	From string   // MAIL FROM address
	To   []string // RCPT TO addresses
	Data []byte   // the message as relayed, CRLF line ends
}

// Delivered returns the messages relayed so far through Submission, oldest
// first. The sink accepts every sender and recipient.
func (s *Server) Delivered() []Delivery {
	s.sink.mu.Lock()
	defer s.sink.mu.Unlock()
	out := make([]Delivery, len(s.sink.delivered))
	for i, d := range s.sink.delivered {
		out[i] = Delivery{From: d.From, To: append([]string(nil), d.To...), Data: append([]byte(nil), d.Data...)}
	}
	return out
}

// RefuseNext makes the SMTP server behind the submission service answer
// the next message's DATA with code (4xx or 5xx) and text, as a real relay
// that refuses a message does; Dovecot passes the refusal on to the client.
// Calls queue up: each refuses one more message.
func (s *Server) RefuseNext(code int, text string) {
	s.sink.mu.Lock()
	defer s.sink.mu.Unlock()
	s.sink.refuse = append(s.sink.refuse, &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: text})
}

// sink is the SMTP server Dovecot's submission service relays to, on
// 127.0.0.1 (Dovecot's relay client is the only peer).
type sink struct {
	srv  *smtp.Server
	port int
	done chan struct{}

	mu        sync.Mutex
	delivered []Delivery
	refuse    []*smtp.SMTPError // replies for the next messages' DATA, in order
}

func startSink() (*sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	k := &sink{port: l.Addr().(*net.TCPAddr).Port, done: make(chan struct{})}
	k.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: k}, nil
	}))
	k.srv.Domain = "sink.localhost"
	k.srv.ReadTimeout = time.Minute
	k.srv.WriteTimeout = time.Minute
	go func() {
		defer close(k.done)
		_ = k.srv.Serve(l) // returns when closed
	}()
	return k, nil
}

func (k *sink) close() {
	_ = k.srv.Close()
	<-k.done
}

type sinkSession struct {
	sink *sink
	cur  Delivery
}

func (ss *sinkSession) Reset()        { ss.cur = Delivery{} }
func (ss *sinkSession) Logout() error { return nil }

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.cur.From = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.cur.To = append(ss.cur.To, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.cur.Data = data
	ss.sink.mu.Lock()
	if len(ss.sink.refuse) > 0 {
		e := ss.sink.refuse[0]
		ss.sink.refuse = ss.sink.refuse[1:]
		ss.sink.mu.Unlock()
		ss.cur = Delivery{}
		return e
	}
	ss.sink.delivered = append(ss.sink.delivered, ss.cur)
	ss.sink.mu.Unlock()
	ss.cur = Delivery{}
	return nil
}
