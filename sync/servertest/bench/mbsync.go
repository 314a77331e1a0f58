package bench

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// MbsyncSpec is one mbsync run: pull Folder of an implicit-TLS IMAP
// account into a fresh Maildir under Dir.
type MbsyncSpec struct {
	Addr     string // host:port
	CertPEM  []byte // the server's certificate and its CA, trusted explicitly
	User     string
	Password string
	Dir      string // holds the configuration, the Maildir and mbsync's state
}

// mbsyncConfig returns the configuration of an mbsync (isync 1.4) pull of
// INBOX into a Maildir; the password comes from the environment, not from
// a file.
func mbsyncConfig(s MbsyncSpec, certFile, maildir string) (string, error) {
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "IMAPAccount bench\nHost %s\nPort %s\nUser %s\n", host, port, s.User)
	fmt.Fprintf(&b, "PassCmd \"printenv MBSYNC_BENCH_PASSWORD\"\nSSLType IMAPS\nCertificateFile %s\n\n", certFile)
	fmt.Fprintf(&b, "IMAPStore remote\nAccount bench\n\n")
	fmt.Fprintf(&b, "MaildirStore local\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n\n", maildir, maildir)
	fmt.Fprintf(&b, "Channel bench\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\nSync Pull\nSyncState *\n")
	return b.String(), nil
}

// RunMbsync runs `mbsync -a` as a user would, with its default settings
// (which fsync every message), and returns the run's measurements. The
// number of messages is counted in the Maildir afterwards.
func RunMbsync(s MbsyncSpec) (Run, error) {
	bin, err := exec.LookPath("mbsync")
	if err != nil {
		return Run{}, fmt.Errorf("mbsync is not installed (Debian package isync): run `make bench`, which installs it")
	}
	maildir := filepath.Join(s.Dir, "Maildir")
	if err := os.MkdirAll(maildir, 0o700); err != nil {
		return Run{}, err
	}
	certFile := filepath.Join(s.Dir, "server.pem")
	if err := os.WriteFile(certFile, s.CertPEM, 0o600); err != nil {
		return Run{}, err
	}
	conf, err := mbsyncConfig(s, certFile, maildir)
	if err != nil {
		return Run{}, err
	}
	confFile := filepath.Join(s.Dir, "mbsyncrc")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		return Run{}, err
	}
	cmd := exec.Command(bin, "-q", "-c", confFile, "-a")
	cmd.Env = append(os.Environ(), "MBSYNC_BENCH_PASSWORD="+s.Password)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Run{}, err
	}
	// Its peak resident set, read while it runs (see Run.MaxRSS).
	var peak int64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			peak = max(peak, procStatus(cmd.Process.Pid, "VmHWM:"))
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	err = cmd.Wait()
	r := Run{Wall: time.Since(start)}
	close(done)
	<-sampled
	r.MaxRSS = peak
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.User = time.Duration(ru.Utime.Nano())
		r.Sys = time.Duration(ru.Stime.Nano())
	}
	if err != nil {
		return r, fmt.Errorf("mbsync: %v: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	for _, sub := range []string{"cur", "new"} {
		files, err := os.ReadDir(filepath.Join(maildir, "INBOX", sub))
		if err != nil {
			return r, fmt.Errorf("mbsync wrote no Maildir: %v", err)
		}
		for _, f := range files {
			if fi, err := f.Info(); err == nil {
				r.Result.Messages++
				r.Result.Bytes += fi.Size()
			}
		}
	}
	return r, nil
}
