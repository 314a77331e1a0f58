package connector

import (
	"errors"
	"fmt"

	"github.com/inboxrelay/inboxrelay/keychain"
	"github.com/inboxrelay/inboxrelay/sync/config"
	"github.com/inboxrelay/inboxrelay/sync/policy"
)

// Unpair forgets the platform: the device token leaves the keychain, and
// the platform (address, device id, CA file, proxy) leaves config.json.
// The accounts, their passwords and every checkpoint stay, so pairing
// again resumes where relaying stopped. The platform is not told: the
// relay API has no call for it; its administrator removes the computer.
func Unpair(home config.Home) error {
	cfg, err := home.Load()
	if err != nil {
		return err
	}
	kc, err := keychain.New(home.Dir)
	if err != nil {
		return err
	}
	if err := kc.Delete(keychain.DeviceTokenKey); err != nil && !errors.Is(err, keychain.ErrNotFound) {
		return fmt.Errorf("delete the device token from the keychain: %w", err)
	}
	cfg.Platform = config.Platform{}
	return home.Save(cfg)
}

// Unpair unpairs the home (see Unpair) and stops relaying, unless IT's
// policy sets the platform (*policy.LockedError).
func (r *Runner) Unpair() error {
	if err := r.o.IT.Refuse(policy.LockPlatform); err != nil {
		return err
	}
	if err := Unpair(r.home); err != nil {
		return err
	}
	r.Reload()
	return nil
}
