# Front door over Meson (see README.md).  `make run` and `make test` work on
# a fresh Debian 12 machine: they install what is missing first.
#
#   make deps    install missing Debian packages (apt-get)
#   make build   configure and build ./build/postern
#   make run     deps + build + `postern serve --foreground` (embedded default)
#   make test    deps + build + every test: unit, e2e, the same under
#                ASan+UBSan, short fuzz runs; ends with "N passed, N failed"
#   make fuzz    long fuzz runs (FUZZ_SECONDS each, default 600)
#   make soak    long crash/restart soak test
#   make bench   side-by-side benchmark against Postfix (bench/README.md)
#   make install [PREFIX=/usr] [DESTDIR=] [SENDMAIL=1]   binary (SENDMAIL=1:
#                also as PREFIX/sbin/sendmail), man pages, systemd unit,
#                logrotate file, /etc/postern/postern.conf (never over an
#                existing one), /var/lib/postern (owned by the user postern,
#                created when missing, when installing for real as root)
#   make uninstall   remove what the last `make install` installed (keeps
#                /etc/postern, /var/lib/postern, /var/log/postern, the user)
#   make deb     Debian package in build/deb/ (debhelper, lintian-checked)

PY       ?= /usr/bin/python3
BUILD    ?= build
DEB_PKGS  = build-essential pkg-config meson ninja-build clang \
            libssl-dev libevent-dev libunbound-dev libconfig-dev libcmocka-dev \
            python3 python3-pytest python3-pytest-xdist python3-aiosmtpd swaks libnet-ssleay-perl postfix openssl \
            python3-dkim python3-cryptography procps iproute2 gpgsm \
            libclang-rt-14-dev
DEB_PKGS += libsystemd-dev systemd scdoc debhelper dpkg-dev fakeroot lintian \
            man-db strace
# e2e: HAProxy in front of two instances, and swaks --tlsc --proxy (swaks
# needs Net::SSLeay for TLS): tests/e2e/test_proxy_protocol.py
DEB_PKGS += haproxy libnet-ssleay-perl
# e2e: DKIM verified by dkimpy (Ed25519 needs python3-nacl) and by mailauth
# (npm ci of tests/e2e/npm/ into build/npm): tests/e2e/test_dkim.py.  npm
# only when no npm command exists (NodeSource's nodejs carries its own).
DEB_PKGS += python3-nacl nodejs
# e2e: `promtool check metrics` on a scrape (tests/e2e/test_metrics.py)
DEB_PKGS += prometheus
# the HTTPS injection API: JSON requests parsed by jansson (docs/http-api.md);
# its e2e tests also drive curl
DEB_PKGS += libjansson-dev curl
FUZZ_SECONDS ?= 600
PREFIX   ?= /usr
DESTDIR  ?=

.PHONY: all deps build run test unit e2e asan fuzz-short fuzz soak bench clean
.PHONY: install uninstall deb

all: build

deps:
	@sh tools/install-deps.sh $(DEB_PKGS)
	@command -v npm >/dev/null 2>&1 || sh tools/install-deps.sh npm

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: deps build
	@# as root, postern drops privileges to the user "postern": create it once
	@if [ "$$(id -u)" -eq 0 ] && ! id postern >/dev/null 2>&1; then \
		adduser --system --group --no-create-home --home /nonexistent postern >/dev/null 2>&1; fi
	./$(BUILD)/postern serve --foreground

test: deps build
	@sh tools/run-tests.sh

fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh tools/run-tests.sh fuzz-long

soak: deps build
	POSTERN_BIN=$(CURDIR)/$(BUILD)/postern POSTERN_SOAK=1 $(PY) -m pytest -v tests/e2e/test_crash.py

bench: deps build
	@sh bench/run-bench.sh

# meson's install machinery (meson install, DESTDIR honoured); the parts it
# cannot do (keep an existing configuration, the user, owners) are
# dist/install-local.sh, which meson runs at the end.
install: build
	meson configure $(BUILD) -Dprefix=$(PREFIX) >/dev/null
	meson install -C $(BUILD) $(if $(DESTDIR),--destdir "$(DESTDIR)")
	@cat $(BUILD)/meson-logs/install-local.txt 2>/dev/null || true
	@# SENDMAIL=1: the same binary as sendmail(1) (postern sendmail)
	$(if $(SENDMAIL),ln -sfn postern "$(DESTDIR)$(PREFIX)/sbin/sendmail" && \
	    echo "installed $(DESTDIR)$(PREFIX)/sbin/sendmail -> postern")

uninstall:
	ninja -C $(BUILD) uninstall
	@if [ "$$(readlink "$(DESTDIR)$(PREFIX)/sbin/sendmail" 2>/dev/null)" = postern ]; then \
		rm -f "$(DESTDIR)$(PREFIX)/sbin/sendmail"; fi
	@echo "kept: /etc/postern, /var/lib/postern (spool, keys), /var/log/postern" \
	    "and the user postern; remove them by hand to be rid of them"

deb:
	@sh tools/build-deb.sh $(CURDIR)/$(BUILD)/deb

clean:
	rm -rf $(BUILD) build-asan build-fuzz
