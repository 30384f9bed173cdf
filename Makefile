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

PY       ?= /usr/bin/python3
BUILD    ?= build
DEB_PKGS  = build-essential pkg-config meson ninja-build clang \
            libssl-dev libevent-dev libunbound-dev libconfig-dev libcmocka-dev \
            python3 python3-pytest python3-pytest-xdist python3-aiosmtpd swaks postfix openssl \
            python3-dkim python3-cryptography procps iproute2 \
            libclang-rt-14-dev
FUZZ_SECONDS ?= 600

.PHONY: all deps build run test unit e2e asan fuzz-short fuzz soak bench clean

all: build

deps:
	@sh tools/install-deps.sh $(DEB_PKGS)

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

clean:
	rm -rf $(BUILD) build-asan build-fuzz
