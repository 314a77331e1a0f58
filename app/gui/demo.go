package gui

import (
	"context"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/demo"
)

// demoSession is the app running against the embedded demo mailbox and
// reference platform (sync/demo), in a throw-away home, as `inboxrelay
// demo` does.
type demoSession struct {
	backend *runnerBackend
	close   func()
}

// startDemo starts the demo (sync/demo.Start) and runs its engine under a
// backend of its own until ctx ends or close is called. close stops the
// engine, then the demo's servers, and removes the home and its keychain
// entries.
func startDemo(ctx context.Context) (*demoSession, error) {
	dctx, stop := context.WithCancel(ctx)
	d, err := demo.Start(dctx, demo.Options{NewMailEvery: 5 * time.Second})
	if err != nil {
		stop()
		return nil, err
	}
	r, err := connector.Open(d.Home, connector.Options{KeepTrying: true})
	if err != nil {
		stop()
		d.Close()
		return nil, err
	}
	b := &runnerBackend{r: r, suffix: " (demo)"}
	done := make(chan struct{})
	go func() { defer close(done); r.Run(dctx) }()
	return &demoSession{backend: b, close: func() {
		stop()
		<-done
		r.Close()
		d.Close()
	}}, nil
}
