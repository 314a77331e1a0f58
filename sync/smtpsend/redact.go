package smtpsend

// redact is the one place a server's words leave a Client after the login:
// err with the password removed in every form (package redact), so an
// echoing server cannot put it into a status, a log, a heartbeat or a
// window. *smtp.SMTPError and *AmbiguousError stay reachable with
// errors.As, as clean copies. Every error a Client method returns passes
// through it.
func (c *Client) redact(err error) error { return c.red.Error(err) }
