package dovecottest

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
)

// capabilityNoIDLE is what Dovecot 2.3.19 advertises after login, less
// IDLE: its built-in list (CAPABILITY_STRING in src/imap/imap-common.h) and
// the LITERAL+, NOTIFY and SPECIAL-USE it appends, which it no longer appends
// once imap_capability is set. TestNoIDLE compares it with what the server
// advertises without the option.
const capabilityNoIDLE = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY " +
	"THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE " +
	"UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH " +
	"ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY " +
	"PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE"

func (s *Server) configPath() string { return filepath.Join(s.Dir, "dovecot.conf") }
func (s *Server) logPath() string    { return filepath.Join(s.Dir, "dovecot.log") }

// namespace returns the personal namespace's prefix and separator.
func (o Options) namespace() (prefix, sep string) {
	if o.Namespace == "" {
		return "", "/"
	}
	return o.Namespace, o.Namespace[len(o.Namespace)-1:]
}

// writeConfig writes dovecot.conf from the options, ports and folders. The
// caller holds s.mu or is Start.
func (s *Server) writeConfig() error {
	if strings.ContainsAny(s.Dir, " \t\"'\\#<>{}$%") {
		return fmt.Errorf("temporary directory %q has characters a Dovecot config cannot hold unquoted: set TMPDIR", s.Dir)
	}
	if p := s.opts.Namespace; p != "" && !strings.HasSuffix(p, ".") && !strings.HasSuffix(p, "/") {
		return fmt.Errorf("Options.Namespace %q must end with its separator, \".\" or \"/\"", p)
	}
	d := s.Dir
	prefix, sep := s.opts.namespace()
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	w("# Written by dovecottest for one test: nothing here comes from /etc/dovecot.")
	w("base_dir = %s/run", d)
	w("state_dir = %s/state", d)
	// The instance name shows in every process title: dovecot-dovecottest-PORT/imap.
	w("instance_name = dovecottest-%d", s.ports[1])
	w("log_path = %s", s.logPath())
	w("log_timestamp = \"%%H:%%M:%%S \"")
	w("auth_verbose = yes")
	w("protocols = imap submission")
	w("listen = %s", listenHost)
	w("hostname = localhost")
	w("default_internal_user = %s", s.account.user)
	w("default_internal_group = %s", s.account.group)
	w("default_login_user = %s", s.account.user)
	w("first_valid_uid = 1")
	w("")
	w("ssl = required")
	w("ssl_cert = <%s/cert.pem", d)
	w("ssl_key = <%s/key.pem", d)
	w("ssl_min_protocol = TLSv1.2")
	w("disable_plaintext_auth = yes")
	w("auth_mechanisms = plain login")
	// Tests log in with wrong passwords on purpose: no 2 s delay before the
	// NO, and no growing penalty for the next logins from 127.0.0.1 (the
	// documented way to turn it off is to disable its anvil socket).
	w("auth_failure_delay = 0")
	w("")
	// Users live in a dict file, not a passwd-file: Dovecot stats a
	// passwd-file at most once a second, so a password changed right after a
	// login would go unnoticed; the dict file is re-read whenever its inode
	// changes, which every atomic rewrite does.
	w("passdb {\n  driver = dict\n  args = %s\n}", s.authDictConfPath())
	w("userdb {\n  driver = static\n  args = uid=%s gid=%s home=%s/mail/%%u\n}", s.account.user, s.account.group, d)
	w("mail_location = maildir:~/Maildir")
	w("")
	w("namespace inbox {")
	w("  inbox = yes")
	w("  prefix = %s", prefix)
	w("  separator = %s", sep)
	w("  mailbox Sent {")
	w("    auto = subscribe")
	if !s.opts.NoSpecialUse {
		w("    special_use = \\Sent")
	}
	w("  }")
	for _, f := range s.folders {
		w("  mailbox %s {", quote(strings.TrimPrefix(f.name, prefix)))
		w("    special_use = %s", f.use)
		w("  }")
	}
	w("}")
	w("")
	if s.opts.NoIDLE {
		w("imap_capability = %s", capabilityNoIDLE)
	}
	if n := s.opts.MaxUserIPConnections; n > 0 {
		w("mail_max_userip_connections = %d", n)
	}
	w("submission_relay_host = 127.0.0.1")
	w("submission_relay_port = %d", s.sink.port)
	w("")
	w("service imap-login {")
	w("  inet_listener imap {\n    address = %s\n    port = %d\n  }", listenHost, s.ports[0])
	w("  inet_listener imaps {\n    address = %s\n    port = %d\n    ssl = yes\n  }", listenHost, s.ports[1])
	w("}")
	w("service submission-login {")
	w("  inet_listener submission {\n    address = %s\n    port = %d\n  }", listenHost, s.ports[2])
	w("}")
	// Every IMAP login runs the post-login script first (see Logins).
	w("service imap {\n  executable = imap postlogin\n}")
	w("service postlogin {\n  executable = script-login %s\n  user = %s\n  unix_listener postlogin {\n  }\n}",
		s.postLoginPath(), s.account.user)
	// chroot needs root; Dovecot never runs as root here (see the package comment).
	w("service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}")
	for _, svc := range []string{"imap-login", "submission-login", "pop3-login", "imap-urlauth-login",
		"anvil", "ipc", "old-stats", "aggregator", "director"} {
		w("service %s {\n  chroot =\n}", svc)
	}
	return s.writeFile(s.configPath(), []byte(b.String()))
}

// quote quotes a mailbox name for a Dovecot config section name.
func quote(name string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `"`
}

func (s *Server) authDictConfPath() string { return filepath.Join(s.Dir, "auth-dict.conf.ext") }
func (s *Server) usersPath() string        { return filepath.Join(s.Dir, "users.dict") }

// writeAuthDictConf writes the passdb dict settings; see writeConfig.
func (s *Server) writeAuthDictConf() error {
	return s.writeFile(s.authDictConfPath(), []byte(fmt.Sprintf(
		"uri = file:%s\npassword_key = passdb/%%u\niterate_disable = yes\ndefault_pass_scheme = PLAIN\n", s.usersPath())))
}

// writeUsers rewrites the users dict file (a key line, then a value line).
// The password is base64 encoded so that any byte but NUL can be used. The
// caller holds s.mu.
func (s *Server) writeUsers() error {
	var b strings.Builder
	for _, email := range slices.Sorted(maps.Keys(s.users)) {
		value, err := json.Marshal(map[string]string{"password": "{PLAIN.b64}" + b64(s.users[email])})
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "shared/passdb/%s\n%s\n", email, value)
	}
	return s.writeFile(s.usersPath(), []byte(b.String()))
}
