package words

import (
	"errors"

	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/settings"
)

// Remove says why a mailbox was not removed or the computer not unpaired.
func Remove(err error) string {
	var le *policy.LockedError
	if errors.As(err, &le) {
		return "Your IT department manages this (" + le.Path + "); it cannot be changed here."
	}
	return "That did not work; show the details in the log to IT."
}

// logLevels say each log level as the choice a person makes.
var logLevels = map[string]string{
	"debug": "Everything (for troubleshooting)",
	"info":  "Normal",
	"warn":  "Problems only",
	"error": "Errors only",
}

// LogLevel is the words for a log level (settings.LogLevels); the level
// itself for one this table does not know.
func LogLevel(level string) string {
	if w, ok := logLevels[level]; ok {
		return w
	}
	return level
}

// Locked says who decides a setting the user cannot change, naming IT's
// policy file when it is theirs; "" when the user decides.
func Locked(eff settings.Effective, k settings.Key, policyPath string) string {
	switch eff.Source(k) {
	case settings.SourcePolicyLocked:
		if policyPath != "" {
			return "Locked by your IT department (" + policyPath + ")."
		}
		return "Locked by your IT department."
	case settings.SourcePlatform:
		return "Set by your platform."
	}
	return ""
}

// Metered explains why "Pause on metered connections" cannot be used
// here: this computer does not say whether its connection is metered.
const Metered = "This computer does not say whether its connection is metered (NetworkManager is not running), so this cannot work here."
