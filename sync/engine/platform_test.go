package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/relay"
	"github.com/inboxrelay/inboxrelay/sync/servertest/testrig"
)

// failingReader gives n bytes, then fails as a disk would.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("input/output error")
	}
	k := min(len(p), r.n)
	for i := range p[:k] {
		p[i] = 'a'
	}
	r.n -= k
	return k, nil
}

// TestLocalFailureIsNoAnswer: an upload that fails on this computer (its
// message cannot be opened, or its file fails part way) got no answer from
// the platform: it neither ends the platform's refusal of the token nor
// clears a problem reaching the platform from the status. An answer does
// both.
func TestLocalFailureIsNoAnswer(t *testing.T) {
	p := testrig.StartPlatform(t)
	_, token := p.Pair(t)
	pl, err := newPlatform(relay.Options{BaseURL: p.URL(), CAFile: p.CAFile, Token: token},
		slog.New(slog.NewTextHandler(testWriter{t}, nil)), func() {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pl.Load().Close() })

	body := bytes.Repeat([]byte("a line of a message\r\n"), 10_000)
	sum := sha256.Sum256(body)
	msg := func(open func() (io.ReadCloser, error)) relay.Message {
		return relay.Message{
			Account: "alice@acme.test", Mailbox: "inbox", Folder: "INBOX", UID: 1, UIDValidity: 1,
			InternalDate: time.Now(), Key: hex.EncodeToString(sum[:]), Size: int64(len(body)), Open: open,
		}
	}
	local := map[string]relay.Message{
		"cannot be opened": msg(func() (io.ReadCloser, error) { return nil, errors.New("no such file or directory") }),
		"fails part way":   msg(func() (io.ReadCloser, error) { return io.NopCloser(&failingReader{n: 50_000}), nil }),
	}
	good := msg(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil })
	upload := func(m relay.Message) error {
		t.Helper()
		c := pl.Load()
		err := c.Upload(t.Context(), m)
		pl.answered(c, err)
		return err
	}

	// The platform refuses the token.
	p.RevokeAll()
	if err := upload(good); !errors.Is(err, relay.ErrUnauthorized) {
		t.Fatalf("upload with a revoked token: %v", err)
	}
	for name, m := range local {
		// The platform may answer 401 before it reads the body: that is an
		// answer, and a refusal still.
		err := upload(m)
		if refused, _ := pl.blocked(); !refused {
			t.Fatalf("an upload whose message %s (%v) ended the platform's refusal of the token", name, err)
		}
	}

	// A new token; the platform is unavailable.
	_, token = p.Pair(t)
	if err := pl.setToken(token); err != nil {
		t.Fatal(err)
	}
	p.FailNext(1, 503, 0)
	if err := upload(good); err == nil {
		t.Fatal("an upload answered 503 succeeded")
	}
	if s := pl.status(); s.State != PlatformUnreachable {
		t.Fatalf("after a 503 the platform is %v", s.State)
	}
	for name, m := range local {
		err := upload(m)
		var le *relay.LocalError
		if !errors.As(err, &le) {
			t.Errorf("an upload whose message %s: %v, want a *relay.LocalError", name, err)
		}
		if s := pl.status(); s.State != PlatformUnreachable || s.Error == "" {
			t.Fatalf("an upload whose message %s (%v) cleared the platform's trouble: %+v", name, err, s)
		}
	}
	if err := upload(good); err != nil {
		t.Fatal(err)
	}
	if s := pl.status(); s.State != PlatformOK || s.Error != "" {
		t.Fatalf("after a stored upload the platform is %+v", s)
	}
}
