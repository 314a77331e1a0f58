package spool

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	s := &Spool{Dir: dir, Threshold: 1024}
	for _, tc := range []struct {
		name   string
		size   int
		onDisk bool
	}{
		{"empty", 0, false},
		{"small", 100, false},
		{"at threshold", 1024, false},
		{"one over", 1025, true},
		{"big", 300_000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("a\r\nb"), tc.size/4+1)[:tc.size]
			b, err := s.Read(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if b.Key != hex.EncodeToString(sum[:]) || b.Size != int64(tc.size) || b.OnDisk() != tc.onDisk {
				t.Fatalf("got key %s size %d onDisk %v", b.Key, b.Size, b.OnDisk())
			}
			for i := 0; i < 2; i++ { // every Open starts from the beginning
				r, err := b.Open()
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(r)
				r.Close()
				if !bytes.Equal(got, data) {
					t.Fatalf("read back %d bytes, differ from the %d written", len(got), len(data))
				}
			}
			if b.OnDisk() {
				fi, err := os.Stat(b.path)
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("spool file mode %v, err %v; want 0600", fi.Mode(), err)
				}
			}
			if err := b.Remove(); err != nil {
				t.Fatal(err)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
				t.Fatalf("files left after Remove: %v", left)
			}
		})
	}
}

func TestClean(t *testing.T) {
	dir := t.TempDir()
	s := &Spool{Dir: dir, Threshold: 1}
	if _, err := s.Read(bytes.NewReader([]byte("left by a crash"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Clean(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Fatalf("files left after Clean: %v", left)
	}
}

// sized is a reader that tells its size, as an IMAP literal does.
type sized struct {
	io.Reader
	n int64
}

func (s sized) Size() int64 { return s.n }

func TestReadSized(t *testing.T) {
	dir := t.TempDir()
	s := &Spool{Dir: dir, Threshold: 1024}
	for _, tc := range []struct {
		name    string
		size    int
		said    int64
		onDisk  bool
		wantErr bool
	}{
		{"empty", 0, 0, false, false},
		{"small", 100, 100, false, false},
		{"at threshold", 1024, 1024, false, false},
		{"over: spooled as usual", 5000, 5000, true, false},
		{"fewer bytes than said", 100, 120, false, true},
		{"more bytes than said", 100, 80, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("x\r\ny"), tc.size/4+1)[:tc.size]
			b, err := s.Read(sized{bytes.NewReader(data), tc.said})
			if tc.wantErr {
				if err == nil {
					t.Fatalf("a reader that said %d bytes and gave %d was read without error", tc.said, tc.size)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Remove()
			sum := sha256.Sum256(data)
			if b.Key != hex.EncodeToString(sum[:]) || b.Size != int64(tc.size) || b.OnDisk() != tc.onDisk {
				t.Fatalf("got key %s size %d onDisk %v", b.Key, b.Size, b.OnDisk())
			}
			r, err := b.Open()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, differ from the %d written", len(got), len(data))
			}
		})
	}
}
