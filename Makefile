# Inbox Relay. `make run` and `make test` work on a fresh Debian/Ubuntu
# machine with Go: each installs what it needs first (idempotently).

GO      ?= go
BIN     := bin/inboxrelay
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The version is written once, in FyneApp.toml ([Details] Version): the
# binary embeds it, and the packages ask the binary.

# Debian packages: what building and running the app needs, and what the
# tests add (a real Dovecot, a real keychain on a private D-Bus, a headless
# X server for the GUI tests).
DEPS_RUN  := gcc pkg-config libgl1-mesa-dev xorg-dev dbus dbus-x11 gnome-keyring ca-certificates
# Cyrus and Courier-IMAP run from their unpacked packages (they conflict
# with Dovecot as packages; sync/servertest/cyrustest and couriertest
# download and unpack them, Courier in a private mount namespace). What they
# need is installed: their tools' dependencies here, and the libraries their
# packages declare, asked of apt so the names fit the release.
UNPACKED  := cyrus-common cyrus-imapd courier-imap courier-base courier-authlib courier-authdaemon courier-authlib-userdb
DEPS_TEST := $(DEPS_RUN) dovecot-imapd dovecot-submissiond xvfb openssl xdotool imagemagick haskell-gtk-sni-tray-utils \
	sasl2-bin perl util-linux mount \
	dante-server libglib2.0-bin gsettings-desktop-schemas \
	desktop-file-utils
# The Windows cross-build's compiler (CI's .ci/run builds it after make test).
DEPS_WINDOWS := gcc-mingw-w64-x86-64

.PHONY: all build build-race build-nfpm run test test-race test-gui-fuzz fuzz fuzz-run bench bench-idle bench-micro deps-run deps-test deps-bench deps-windows install-libs vet clean package build-windows

all: build

build:
	$(GO) build -o $(BIN) .

# install-missing PACKAGES: apt-get install only what dpkg does not have.
define install-missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps-run:
	$(call install-missing,$(DEPS_RUN))
	$(GO) mod download

deps-test:
	$(call install-missing,$(DEPS_TEST))
	@apt-cache show $(UNPACKED) >/dev/null 2>&1 || $(SUDO) apt-get update -qq
	@libs=$$(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances $(UNPACKED) \
		| awk '$$1 ~ /^[|]?(Pre)?Depends:$$/ && $$2 ~ /^lib/ {print $$2}' | sort -u | tr '\n' ' '); \
	$(MAKE) --no-print-directory install-libs LIBS="$$libs"
	$(GO) mod download

# install-libs LIBS=...: the libraries of the unpacked servers.
install-libs:
	$(call install-missing,$(LIBS))

# The tray app (the terminal demo where there is no display). With no
# session bus (a bare server or container), it gets a private one with a
# throw-away unlocked keyring; the app's first window offers "Try the demo".
run: deps-run build
	@if [ -z "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		echo "No display here: starting the terminal demo instead of the tray app."; \
		set -- demo; \
	else \
		set --; \
	fi; \
	if [ -n "$$DBUS_SESSION_BUS_ADDRESS" ]; then \
		$(BIN) "$$@"; \
	else \
		export XDG_DATA_HOME=$$(mktemp -d); \
		dbus-run-session -- sh -c 'echo demo | gnome-keyring-daemon --unlock --components=secrets >/dev/null && exec "$$0" "$$@"' $(BIN) "$$@"; \
	fi

vet:
	$(GO) vet ./...

# The tests run with the race detector, but for the window's package
# (app/gui): under -race, GLFW's and OpenGL's C would be compiled a second
# time (minutes of one core on a fresh machine) beside the plain build the
# end-to-end tests run. The engine and the Runner it drives (sync/...) are
# race-tested. First, side by side, what the tests compile slowly: the app
# (app/cli's, app/e2e's and assets/packaging's tests build it again and
# find it in Go's build cache), the race-enabled packages, and nfpm (what
# `make package` runs); then vet; then the race-enabled tests, and beside
# them app/gui's tests and the short fuzzing.
RACE_PKGS = $$($(GO) list ./... | grep -v -x -e '$(MODULE)' -e '$(MODULE)/app/gui')
MODULE    = github.com/inboxrelay/inboxrelay

test: deps-test
	$(MAKE) --no-print-directory -j3 build build-race build-nfpm
	$(MAKE) --no-print-directory vet
	$(MAKE) --no-print-directory -j2 test-race test-gui-fuzz

test-race:
	$(GO) test -race -count=1 -timeout 30m $(RACE_PKGS)

test-gui-fuzz:
	$(GO) test -count=1 -timeout 30m ./app/gui
	$(MAKE) --no-print-directory fuzz-run FUZZTIME=$(FUZZTIME_SHORT)

# Fuzz targets: every parser of what a mail server, the platform or DNS
# sends (package:target). `make test` runs each briefly, `make fuzz` for
# FUZZTIME each (make fuzz FUZZTIME=10m). A failure leaves its input under
# the package's testdata/fuzz, where `go test` replays it from then on.
FUZZ_TARGETS := sync/redact:FuzzString sync/autoconfig:FuzzParseConfig sync/autoconfig:FuzzSRVAnswer \
	sync/relay:FuzzParseSettings sync/relay:FuzzOutboxDecode sync/engine:FuzzInDomains \
	sync/engine:FuzzPrepareFile sync/imapsync:FuzzLimitConn
FUZZTIME       ?= 2m
FUZZTIME_SHORT ?= 4s

fuzz: deps-test
	$(MAKE) --no-print-directory fuzz-run FUZZTIME=$(FUZZTIME)

fuzz-run:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done

# Benchmarks measure; they never gate. `make bench` prints issue 12's table
# (sync/servertest/bench, explained in docs/performance.md): a bare IMAP
# fetch, mbsync and Inbox Relay on the same generated mailboxes, on tmpfs
# and on disk, a slower platform, the new-mail delay and a 100 000-message
# mailbox; then the desktop app at rest (bench-idle, about 6 minutes); then
# the Go micro-benchmarks. About 20 minutes on two cores (BIG=0 skips the
# big mailbox, 3 of them); PROFILE=DIR writes the engine's CPU and
# allocation profiles there; BENCH_FLAGS passes more -table.* flags (see
# bench_test.go).
BIG         ?= 100000
PROFILE     ?=
BENCH_FLAGS ?=
IDLE_FLAGS  ?=
DEPS_BENCH  := isync

deps-bench:
	$(call install-missing,$(DEPS_BENCH))

bench: deps-test deps-bench build
	$(GO) test -run '^$$' -bench '^BenchmarkTable$$' -benchtime 1x -timeout 90m ./sync/servertest/bench \
		-args -table.cli $(abspath $(BIN)) -table.big $(BIG) $(if $(PROFILE),-table.profile $(abspath $(PROFILE))) $(BENCH_FLAGS)
	$(MAKE) --no-print-directory bench-idle
	$(MAKE) --no-print-directory bench-micro

# The desktop app at rest (app/idlebench): CPU, wake-ups and memory of the
# real app under Xvfb with a tray host, its window never opened, open, and
# closed again (about 6 minutes). PROFILE=DIR writes the app's profiles to
# DIR/idle; IDLE_FLAGS passes more -idle.* flags (see idle_test.go).
bench-idle: deps-test build
	$(GO) test -run '^$$' -bench '^BenchmarkIdle$$' -benchtime 1x -timeout 30m ./app/idlebench \
		-args -idle.bin $(abspath $(BIN)) $(if $(PROFILE),-idle.profile $(abspath $(PROFILE))/idle) $(IDLE_FLAGS)

bench-micro: deps-test
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m $$($(GO) list ./... | grep -v -e /servertest/bench -e /app/idlebench)

# The Windows binary, cross-compiled with Debian's mingw-w64, so that a
# change that breaks Windows fails CI: .ci/run runs this after `make test`
# (it compiles GLFW's and OpenGL's C once more, minutes on a fresh
# machine). The engine and the command line are compiled for macOS too (the
# window needs Apple's SDK: README.md, "Building for Windows and macOS");
# the test servers are Linux-only.
deps-windows:
	$(call install-missing,$(DEPS_WINDOWS))

build-windows: deps-windows
	CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=x86_64-w64-mingw32-gcc $(GO) build -o bin/inboxrelay.exe .
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build $$($(GO) list ./sync/... ./keychain/... ./app/cli/ ./app/autostart/ | grep -v /servertest/)

# The race-tested packages under -race, as their tests link them (those
# with code outside their tests: go build takes no other).
build-race:
	$(GO) build -race $$($(GO) list -f '{{if .GoFiles}}{{.ImportPath}}{{end}}' ./... | grep -v -x -e '$(MODULE)' -e '$(MODULE)/app/gui')

# nfpm, compiled once into Go's build cache (`go run` keeps what it built).
build-nfpm:
	$(GO) run $(NFPM) --version >/dev/null

# Packages: a .deb (nfpm) and a tarball of the same tree in $(DIST), with
# the binary, the .desktop file, the icon, the systemd user unit (not
# enabled), the README, the IT guide, an example policy, and the macOS
# LaunchAgent and Windows task for reference. The tree is staged once in
# $(STAGE); both archives are made from it.
DIST  ?= dist
STAGE ?= build/stage
NFPM  := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
package: deps-run
	rm -rf $(STAGE)
	mkdir -p $(DIST) $(STAGE)/usr/bin
	CGO_ENABLED=1 $(GO) build -o $(STAGE)/usr/bin/inboxrelay .
	install -Dm644 assets/packaging/inboxrelay.desktop $(STAGE)/usr/share/applications/com.inboxrelay.app.desktop
	install -Dm644 assets/app.png $(STAGE)/usr/share/icons/hicolor/64x64/apps/com.inboxrelay.app.png
	install -Dm644 assets/packaging/inboxrelay.service $(STAGE)/usr/lib/systemd/user/inboxrelay.service
	install -Dm644 README.md $(STAGE)/usr/share/doc/inboxrelay/README.md
	install -Dm644 docs/it-guide.md $(STAGE)/usr/share/doc/inboxrelay/it-guide.md
	install -Dm644 assets/packaging/policy.example.toml $(STAGE)/usr/share/doc/inboxrelay/policy.example.toml
	install -Dm644 assets/packaging/com.inboxrelay.run.plist $(STAGE)/usr/share/doc/inboxrelay/examples/com.inboxrelay.run.plist
	install -Dm644 assets/packaging/inboxrelay-task.xml $(STAGE)/usr/share/doc/inboxrelay/examples/inboxrelay-task.xml
	@v=$$($(STAGE)/usr/bin/inboxrelay version | cut -d' ' -f2); arch=$$($(GO) env GOARCH); \
	echo "packaging inboxrelay $$v ($$arch) into $(DIST)"; \
	cd $(STAGE) && VERSION=$$v ARCH=$$arch $(GO) run $(NFPM) package -f $(abspath assets/packaging/nfpm.yaml) \
		-p deb -t $(abspath $(DIST))/inboxrelay_$${v}_$$arch.deb && cd $(CURDIR) && \
	tar -C $(STAGE) --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
		--transform "s,^\.,inboxrelay-$$v," -czf $(DIST)/inboxrelay_$${v}_linux_$$arch.tar.gz .

clean:
	rm -rf bin build dist
