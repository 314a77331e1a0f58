package engine

import (
	"errors"
	"log/slog"
	gosync "sync"

	"github.com/inboxrelay/inboxrelay/sync/relay"
)

// platform is the one owner of what the engine knows of the platform: the
// client holding the current device token, whether the platform refused
// that token, and the last problem reaching it. A refusal (401/403) blocks
// relaying only when it was the answer to the current token; any success
// with the current token ends it, and so does a new token. Safe for
// concurrent use.
type platform struct {
	log      *slog.Logger
	onChange func() // called with p.mu held; must not call back

	mu        gosync.Mutex
	opts      relay.Options
	client    *relay.Client
	refused   bool          // the platform refused the current client's token
	unblocked chan struct{} // closed while not refused
	err       string        // the last problem reaching the platform, "" when none
}

func newPlatform(o relay.Options, log *slog.Logger, onChange func()) (*platform, error) {
	c, err := relay.New(o)
	if err != nil {
		return nil, err
	}
	p := &platform{log: log, onChange: onChange, opts: o, client: c, unblocked: make(chan struct{})}
	close(p.unblocked)
	return p, nil
}

// Load returns the client with the current token. Report what it answered
// with refusedBy or answered.
func (p *platform) Load() *relay.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client
}

// refusedBy records that the platform refused c's token. It blocks
// relaying only if c is still the current client: a late answer to an old
// token says nothing of the new one.
func (p *platform) refusedBy(c *relay.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c != p.client || p.refused {
		return
	}
	p.refused = true
	p.unblocked = make(chan struct{})
	p.log.Warn("the platform refused the device token; relaying stops until the device is paired again")
	p.onChange()
}

// answered records how a call with c ended, other than a refusal: nil (or
// any answer the platform gave, such as a rejection) shows the token is
// accepted, which ends a refusal; a temporary error is kept for the status.
// A call that failed on this computer (*relay.LocalError) got no answer:
// it changes nothing.
func (p *platform) answered(c *relay.Client, err error) {
	var te *relay.TemporaryError
	var le *relay.LocalError
	if errors.As(err, &le) {
		return
	}
	if errors.Is(err, relay.ErrUnauthorized) {
		p.refusedBy(c)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c != p.client {
		return
	}
	text := ""
	if errors.As(err, &te) {
		text = err.Error()
	} else if p.refused {
		p.refused = false
		close(p.unblocked)
		p.log.Info("the platform accepts the device token again")
		p.onChange()
	}
	if p.err != text {
		p.err = text
		p.onChange()
	}
}

// setToken makes token the current one, with a new client, and ends a
// refusal.
func (p *platform) setToken(token string) error {
	p.mu.Lock()
	o := p.opts
	p.mu.Unlock()
	o.Token = token
	c, err := relay.New(o)
	if err != nil {
		return err
	}
	p.mu.Lock()
	old := p.client
	p.opts.Token, p.client = token, c
	if p.refused {
		p.refused = false
		close(p.unblocked)
	}
	p.err = ""
	p.onChange()
	p.mu.Unlock()
	old.Close()
	return nil
}

// token returns the current device token.
func (p *platform) token() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opts.Token
}

// blocked reports whether the platform refused the current token, and a
// channel closed when that ends.
func (p *platform) blocked() (bool, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused, p.unblocked
}

// status returns the platform's part of the snapshot.
func (p *platform) status() PlatformStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := PlatformStatus{URL: p.opts.BaseURL, State: PlatformOK, Error: p.err}
	switch {
	case p.refused:
		s.State, s.Error = PlatformNeedsPairing, relay.ErrUnauthorized.Error()
	case p.err != "":
		s.State = PlatformUnreachable
	}
	return s
}
