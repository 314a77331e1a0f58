// Package packaging_test builds the packages as `make package` does and
// installs the .deb into a scratch root: every file the systemd unit and
// the .desktop file name must be where they say, the program must run,
// and the tarball must hold the same tree.
package packaging_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inboxrelay/inboxrelay/sync/policy"
	"github.com/inboxrelay/inboxrelay/sync/version"
)

const root = "../.."

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// keyValues reads "Key=Value" lines (a unit or a .desktop file).
func keyValues(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			kv[k] = v
		}
	}
	return kv
}

func executable(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("not installed: %v", err)
	}
	if fi.Mode()&0o111 == 0 || !fi.Mode().IsRegular() {
		t.Fatalf("%s is not an executable file (%v)", path, fi.Mode())
	}
}

func TestMakePackage(t *testing.T) {
	for _, tool := range []string{"make", "dpkg-deb", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed", tool)
		}
	}
	fyneApp, err := os.ReadFile(filepath.Join(root, "FyneApp.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := version.FromFyneApp(fyneApp)
	if err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	run(t, root, "make", "--no-print-directory", "package", "DIST="+dist, "STAGE="+filepath.Join(t.TempDir(), "stage"))

	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	tgzs, _ := filepath.Glob(filepath.Join(dist, "*.tar.gz"))
	if len(debs) != 1 || len(tgzs) != 1 {
		t.Fatalf("dist holds %v and %v, want one .deb and one .tar.gz", debs, tgzs)
	}
	if !strings.Contains(filepath.Base(debs[0]), "_"+want+"_") {
		t.Errorf("the .deb %s does not carry the version %s", debs[0], want)
	}

	// The control fields.
	info := run(t, dist, "dpkg-deb", "--field", debs[0], "Package", "Version", "Depends")
	if !strings.Contains(info, "Package: inboxrelay") || !strings.Contains(info, "Version: "+want) {
		t.Fatalf("control fields:\n%s", info)
	}

	// Install into a scratch root.
	sroot := t.TempDir()
	run(t, dist, "dpkg", "-x", debs[0], sroot)

	// The unit: its ExecStart runs the program, which says the version.
	unit := keyValues(t, filepath.Join(sroot, "usr/lib/systemd/user/inboxrelay.service"))
	exec0 := strings.Fields(unit["ExecStart"])
	if len(exec0) != 2 || exec0[1] != "run" || unit["Restart"] != "on-failure" || unit["StandardError"] != "journal" || unit["WantedBy"] != "default.target" {
		t.Fatalf("unit: %v", unit)
	}
	bin := filepath.Join(sroot, exec0[0])
	executable(t, bin)
	if out := run(t, sroot, bin, "version"); strings.TrimSpace(out) != "inboxrelay "+want {
		t.Fatalf("the installed program says %q, want version %s", out, want)
	}

	// The .desktop file: its Exec and its Icon.
	desktops, _ := filepath.Glob(filepath.Join(sroot, "usr/share/applications/*.desktop"))
	if len(desktops) != 1 {
		t.Fatalf("desktop files: %v", desktops)
	}
	d := keyValues(t, desktops[0])
	executable(t, filepath.Join(sroot, strings.Fields(d["Exec"])[0]))
	icons, _ := filepath.Glob(filepath.Join(sroot, "usr/share/icons/hicolor/*/apps/"+d["Icon"]+".png"))
	if len(icons) == 0 {
		t.Fatalf("the icon %q is not installed under hicolor", d["Icon"])
	}
	if d["Name"] != "Inbox Relay" || d["Type"] != "Application" {
		t.Errorf("desktop entry: %v", d)
	}
	if v, err := exec.LookPath("desktop-file-validate"); err == nil {
		run(t, sroot, v, desktops[0])
	}
	if v, err := exec.LookPath("systemd-analyze"); err == nil {
		// A copy whose ExecStart points into the scratch root: systemd
		// checks that the program is there, and warns about any key it
		// does not know (with no user manager in a container, --user
		// cannot be verified as such).
		b, _ := os.ReadFile(filepath.Join(sroot, "usr/lib/systemd/user/inboxrelay.service"))
		copy := filepath.Join(t.TempDir(), "inboxrelay.service")
		os.WriteFile(copy, bytes.Replace(b, []byte("ExecStart="+exec0[0]), []byte("ExecStart="+bin), 1), 0o644)
		out, err := exec.Command(v, "verify", "--man=no", copy).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}

	// The documents, and an example policy that the program accepts.
	for _, f := range []string{"README.md", "it-guide.md", "policy.example.toml", "examples/com.inboxrelay.run.plist", "examples/inboxrelay-task.xml"} {
		if _, err := os.Stat(filepath.Join(sroot, "usr/share/doc/inboxrelay", f)); err != nil {
			t.Errorf("doc %s: %v", f, err)
		}
	}
	if _, err := policy.Load(filepath.Join(sroot, "usr/share/doc/inboxrelay/policy.example.toml")); err != nil {
		t.Errorf("the example policy does not load: %v", err)
	}

	// Every library the program links is provided by a package it depends
	// on (GLFW also opens the X extensions it lists at run time).
	depends := regexp.MustCompile(`[a-z0-9.+-]+`).FindAllString(strings.SplitN(info, "Depends:", 2)[1], -1)
	needed := run(t, sroot, "readelf", "-d", bin)
	for _, m := range regexp.MustCompile(`\(NEEDED\).*\[(.+)\]`).FindAllStringSubmatch(needed, -1) {
		lib := m[1]
		owner := libraryPackage(t, lib)
		if owner != "" && !slices.Contains(depends, owner) {
			t.Errorf("the program needs %s from %s, which Depends does not list (%v)", lib, owner, depends)
		}
	}

	// The tarball holds the same files under inboxrelay-VERSION/.
	debFiles := map[string]bool{}
	filepath.Walk(sroot, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(sroot, p)
			debFiles[rel] = true
		}
		return nil
	})
	tgzFiles := tarFiles(t, tgzs[0], "inboxrelay-"+want+"/")
	for f := range debFiles {
		if !tgzFiles[f] {
			t.Errorf("%s is in the .deb, not in the tarball", f)
		}
	}
	for f := range tgzFiles {
		if !debFiles[f] {
			t.Errorf("%s is in the tarball, not in the .deb", f)
		}
	}
}

// libraryPackage returns the Debian package that holds a shared library
// of this machine, "" when dpkg does not know it.
func libraryPackage(t *testing.T, lib string) string {
	t.Helper()
	out, _ := exec.Command("ldconfig", "-p").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != lib {
			continue
		}
		path := f[len(f)-1]
		for _, p := range []string{path, strings.TrimPrefix(path, "/usr"), "/usr" + path} {
			if o, err := exec.Command("dpkg", "-S", p).Output(); err == nil {
				pkg, _, _ := strings.Cut(strings.TrimSpace(string(o)), ":")
				return pkg
			}
		}
	}
	return ""
}

func tarFiles(t *testing.T, path, prefix string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h.Name, prefix) {
			t.Fatalf("tarball entry %s is not under %s", h.Name, prefix)
		}
		if h.Typeflag == tar.TypeReg {
			if h.Uid != 0 || h.Gid != 0 {
				t.Errorf("%s is owned by %d:%d, want root", h.Name, h.Uid, h.Gid)
			}
			files[strings.TrimPrefix(h.Name, prefix)] = true
		}
	}
}
