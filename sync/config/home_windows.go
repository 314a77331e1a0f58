//go:build windows

package config

import (
	"fmt"
	"os"
)

// checkHome makes sure the home is a folder. On Windows the user's
// profile folders are private by their ACLs.
func checkHome(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("home %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("the home %s is not a folder: give a folder with --home or INBOXRELAY_HOME", dir)
	}
	return nil
}
