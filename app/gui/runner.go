package gui

import (
	"context"
	"errors"

	"github.com/inboxrelay/inboxrelay/sync/autoconfig"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/connector"
	"github.com/inboxrelay/inboxrelay/sync/doctor"
	"github.com/inboxrelay/inboxrelay/sync/engine"
	"github.com/inboxrelay/inboxrelay/sync/settings"
	"github.com/inboxrelay/inboxrelay/sync/trust"
)

// runnerBackend is the Backend of the real app: a thin adapter over a
// connector.Runner, which supervises the engine, keeps the pause reasons
// and the subscriber list. It adds nothing of its own but the connection
// test and, for the demo, the computer's name.
type runnerBackend struct {
	r      *connector.Runner
	finder autoconfig.Finder
	suffix string // added to the computer's name (" (demo)")
}

func (b *runnerBackend) Status() Status {
	st := b.r.Status()
	st.DeviceName += b.suffix
	return st
}

func (b *runnerBackend) Subscribe() (<-chan struct{}, func()) { return b.r.Subscribe() }

func (b *runnerBackend) SyncNow() { b.r.SyncNow() }

func (b *runnerBackend) SetPaused(p bool) { b.r.SetPaused(engine.PausedByUser, p) }

func (b *runnerBackend) Pair(ctx context.Context, o connector.PairOptions) error {
	_, err := b.r.Pair(ctx, o)
	return err
}

func (b *runnerBackend) FindServers(ctx context.Context, email string) (autoconfig.Result, error) {
	return b.finder.Find(ctx, email)
}

func (b *runnerBackend) Check(ctx context.Context, acct config.Account, password string, progress func([]Step)) (config.Account, error) {
	ctx, err := b.r.MailContext(ctx)
	if err != nil {
		return acct, err
	}
	checked, err := checkAccount(ctx, acct, password, progress, doctor.Run)
	if err != nil {
		b.r.Log().Info("connection test failed", "account", acct.Email, "err", err)
	} else {
		b.r.Log().Info("connection test passed", "account", acct.Email)
	}
	return checked, err
}

func (b *runnerBackend) AddAccount(ctx context.Context, acct config.Account, password string) error {
	_, err := b.r.AddAccount(ctx, acct, password)
	return err
}

func (b *runnerBackend) SetPassword(ctx context.Context, email, password string) error {
	return b.r.SetPassword(ctx, email, password)
}

func (b *runnerBackend) CheckCertificate(ctx context.Context, email string) error {
	_, err := b.r.CheckStoredAccount(ctx, email)
	var ue *trust.UntrustedError
	if errors.As(err, &ue) {
		return ue
	}
	return nil
}

func (b *runnerBackend) TrustCertificate(email string, pin trust.Pin) error {
	return b.r.TrustCertificate(email, pin)
}

func (b *runnerBackend) SetSettings(change settings.Values) error { return b.r.SetUserSettings(change) }

func (b *runnerBackend) LogDir() string { return b.r.Home().LogDir() }

func (b *runnerBackend) RemoveAccount(email string) error { return b.r.RemoveAccount(email) }

func (b *runnerBackend) Unpair() error { return b.r.Unpair() }

func (b *runnerBackend) PlatformOptions() connector.PairOptions {
	cfg, err := b.r.Home().Load()
	if err != nil {
		return connector.PairOptions{}
	}
	return connector.PairOptions{URL: cfg.Platform.URL, CAFile: cfg.Platform.CAFile, Proxy: cfg.Platform.Proxy}
}
