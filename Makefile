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
# Cyrus runs from its unpacked packages (it conflicts with Dovecot as a
# package; sync/servertest/cyrustest downloads and unpacks it): only the
# libraries it links to, and saslpasswd2, are installed.
DEPS_CYRUS := sasl2-bin libsasl2-modules libsasl2-modules-db libclamav12 libical3 libicu72 libjansson4 \
	libxapian30 libzephyr4 libpq5 libwrap0 libldap-2.5-0 libpcre3 libxml2 libsqlite3-0 libkrb5-3 libcom-err2
# Courier-IMAP runs the same way (sync/servertest/couriertest), in a private
# mount namespace: the libraries it links to, perl for its userdb tools, and
# util-linux and mount for setpriv, nsenter and overlay mounts.
DEPS_COURIER := libcourier-unicode4 libgamin0 libgdbm6 libidn12 libgnutls30 libltdl7 libpam0g perl util-linux mount
DEPS_TEST := $(DEPS_RUN) dovecot-imapd dovecot-submissiond xvfb openssl xdotool imagemagick $(DEPS_CYRUS) $(DEPS_COURIER)

.PHONY: all build run test bench deps-run deps-test vet clean

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
	$(GO) mod download

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

bench: deps-test
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...

clean:
	rm -rf bin
