#!/bin/sh
# The whole test suite, as `make test` runs it (also `.ci/run`):
#   1. unit tests (cmocka) on the normal build
#   2. end-to-end tests (pytest, real peers on loopback) on the normal build
#   3. unit + end-to-end tests again on an ASan+UBSan build
#   4. short libFuzzer runs of every parser of untrusted input
# Before the end-to-end tests the Debian package is built once (`make deb`,
# about a minute): tests/e2e/test_package.py unpacks it and runs its postern.
# End-to-end tests run on E2E_JOBS (default 2) workers (pytest-xdist);
# every test has its own ports, directories and daemons.
# Each stage's results are collected and one summary line ends the output:
#   "N passed, N failed"
# With argument "fuzz-long" only the fuzzers run, FUZZ_SECONDS each.
set -u
PY=${PY:-/usr/bin/python3}
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
RES="$TOP/build/test-results"
rm -rf "$RES"; mkdir -p "$RES"
status=0
FUZZ_SECONDS=${FUZZ_SECONDS:-20}

stage() { echo; echo "==== $* ===="; }

run_unit() {	# $1 build dir, $2 label
	meson test -C "$1" --suite unit --print-errorlogs > "$RES/unit-$2.out" 2>&1 || status=1
	tail -n 12 "$RES/unit-$2.out"
	cp "$1/meson-logs/testlog.json" "$RES/unit-$2.json" 2>/dev/null || true
}

run_e2e() {	# $1 build dir, $2 label, rest: pytest args
	b=$1; l=$2; shift 2
	POSTERN_BIN="$TOP/$b/postern" POSTERN_LABEL="$l" timeout 1500 \
	    "$PY" -m pytest -p no:cacheprovider -q -rfE -n "${E2E_JOBS:-2}" tests/e2e \
	    --junitxml="$RES/e2e-$l.xml" "$@"
	rc=$?
	# exit 5 = no tests collected: that is a failure here, not a pass
	[ $rc -eq 0 ] || status=1
}

run_fuzz() {	# $1 seconds
	if ! command -v clang >/dev/null 2>&1; then
		echo "clang missing: fuzz stage failed"; status=1; return
	fi
	if [ ! -f build-fuzz/build.ninja ]; then
		CC=clang meson setup build-fuzz -Dfuzz=true -Dunit_tests=false \
		    -Dc_args=-fsanitize=fuzzer-no-link -Db_sanitize=address,undefined \
		    -Db_lundef=false -Dfuzz_seconds="$1" >/dev/null || { status=1; return; }
	else
		meson configure build-fuzz -Dfuzz_seconds="$1" >/dev/null
	fi
	ninja -C build-fuzz >/dev/null || { echo "fuzz build failed"; status=1; return; }
	meson test -C build-fuzz --suite fuzz --print-errorlogs > "$RES/fuzz.out" 2>&1 || status=1
	grep -E "^ *[0-9]+/[0-9]+ " "$RES/fuzz.out" || tail -n 20 "$RES/fuzz.out"
	cp build-fuzz/meson-logs/testlog.json "$RES/fuzz.json" 2>/dev/null || true
}

if [ "${1:-}" = "fuzz-long" ]; then
	stage "fuzz ($FUZZ_SECONDS s per target)"
	run_fuzz "$FUZZ_SECONDS"
	"$PY" tools/summarize-tests.py "$RES"
	exit $status
fi

stage "build"
ninja -C build >/dev/null || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

stage "unit tests"
run_unit build plain

stage "Debian package (make deb)"
sh tools/build-deb.sh "$TOP/build/deb" > "$RES/deb.out" 2>&1 || {
	tail -n 40 "$RES/deb.out"; status=1; }
tail -n 1 "$RES/deb.out"

stage "end-to-end tests"
run_e2e build plain

stage "ASan+UBSan build: unit and end-to-end tests"
if [ ! -f build-asan/build.ninja ]; then
	meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
	    --buildtype=debug >/dev/null || status=1
fi
if ninja -C build-asan >/dev/null; then
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 run_unit build-asan asan
	ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
	    run_e2e build-asan asan -m "not bench"
else
	echo "ASan build failed"; status=1
fi

stage "fuzz ($FUZZ_SECONDS s per target)"
run_fuzz "$FUZZ_SECONDS"

stage "summary"
"$PY" tools/summarize-tests.py "$RES" || status=1
exit $status
