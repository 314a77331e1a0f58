package gui

import "github.com/inboxrelay/inboxrelay/sync/imapsync"

var errAuth = imapsync.ErrAuth
