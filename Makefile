# Inbox Relay. `make run` and `make test` work on a fresh Debian/Ubuntu
# machine with Go: each installs what it needs first (idempotently).

GO      ?= go
BIN     := bin/inboxrelay
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/inboxrelay/inboxrelay/sync/version.Version=$(VERSION)
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

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
DEPS_TEST := $(DEPS_RUN) dovecot-imapd dovecot-submissiond xvfb openssl xdotool imagemagick \
	sasl2-bin perl util-linux mount \
	dante-server libglib2.0-bin gsettings-desktop-schemas

.PHONY: all build run test bench bench-micro deps-run deps-test deps-bench install-libs vet clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

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

test: deps-test vet
	$(GO) test -race -count=1 -timeout 30m ./...

# Benchmarks measure; they never gate. `make bench` prints issue 12's table
# (sync/servertest/bench): a bare IMAP fetch, mbsync and Inbox Relay on the
# same generated mailboxes, on tmpfs and on disk, a slower platform, the
# new-mail delay; then the Go micro-benchmarks. About 15 minutes on two
# cores. BIG=100000 adds the 100 000-message mailbox (a few minutes more);
# PROFILE=DIR writes the engine's CPU and allocation profiles there;
# BENCH_FLAGS passes more -table.* flags (see bench_test.go).
BIG         ?= 0
PROFILE     ?=
BENCH_FLAGS ?=
DEPS_BENCH  := isync

deps-bench:
	$(call install-missing,$(DEPS_BENCH))

bench: deps-test deps-bench build
	$(GO) test -run '^$$' -bench '^BenchmarkTable$$' -benchtime 1x -timeout 90m ./sync/servertest/bench \
		-args -table.cli $(abspath $(BIN)) -table.big $(BIG) $(if $(PROFILE),-table.profile $(abspath $(PROFILE))) $(BENCH_FLAGS)
	$(MAKE) --no-print-directory bench-micro

bench-micro: deps-test
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m $$($(GO) list ./... | grep -v /servertest/bench)

clean:
	rm -rf bin
