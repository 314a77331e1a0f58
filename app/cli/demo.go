package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/demo"
	"github.com/inboxrelay/inboxrelay/sync/servertest/refplatform"
)

// demo runs an embedded mailbox and reference platform on loopback, pairs
// a throw-away home with the platform, and relays between them, printing
// each message the platform stores. Nothing of the user's own home is
// touched; the throw-away home and its keychain entries are removed at the
// end.
func (e *env) demo(args []string) error {
	fs := flags("demo")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	every := fs.Duration("new-mail-every", 5*time.Second, "how often a new customer message arrives")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	d, err := demo.Start(ctx, demo.Options{NewMailEvery: *every})
	if err != nil {
		return err
	}
	defer d.Close()
	plat, mailSrv, home := d.Platform, d.Mail, d.Home
	fmt.Fprintf(e.stdout, "demo mailbox %s: IMAP %s, SMTP %s (certificate pinned: %s)\n", demo.Email, mailSrv.IMAPAddr(), mailSrv.SMTPAddr(), mailSrv.Fingerprint())
	fmt.Fprintf(e.stdout, "demo platform: %s\n", plat.URL())

	r, err := connector.Open(home, connector.Options{})
	if err != nil {
		return err
	}
	defer r.Close()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	fmt.Fprintln(e.stdout, "relaying; press Ctrl+C to stop")
	// A CSM answers a customer from the platform: the connector sends the
	// reply and files it in Sent, whence it is relayed like any sent mail.
	replyID := plat.Enqueue(refplatform.OutboxItem{
		Account: demo.Email, From: demo.Email, To: []string{"customer@client.example"},
		Raw: []byte("From: " + demo.Email + "\r\nTo: customer@client.example\r\nSubject: Re: Renewal question\r\n\r\nHappy to help with the renewal: I will send the quote today.\r\n"),
	})
	reported := false
	seen := map[string]bool{}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		if res := plat.Results()[replyID]; len(res) > 0 && !reported {
			reported = true
			fmt.Fprintf(e.stdout, "outbox: the reply was %s (SMTP %d), filed in Sent as UID %d\n", res[0].State, res[0].SMTPCode, res[0].SentUID)
		}
		for _, m := range plat.Messages() {
			if seen[m.Key] {
				continue
			}
			seen[m.Key] = true
			fmt.Fprintf(e.stdout, "relayed %-5s UID %-3d %6d bytes  %s\n", m.Mailbox, m.UID, m.Size, subject(m))
		}
		select {
		case err := <-done:
			fmt.Fprintf(e.stdout, "stopped; the platform stored %d messages\n", len(seen))
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		case <-tick.C:
		}
	}
}

// subject reads the stored message's Subject, decoded, for display.
func subject(m refplatform.Message) string {
	f, err := m.Open()
	if err != nil {
		return ""
	}
	defer f.Close()
	msg, err := mail.ReadMessage(bufio.NewReader(f))
	if err != nil {
		return "(unreadable header)"
	}
	s := msg.Header.Get("Subject")
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		s = d
	}
	return s
}
