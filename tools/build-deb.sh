#!/bin/sh
# build-deb.sh OUTDIR - `make deb`: build the Debian package from this
# source tree, without network, and check it with lintian.
#   1. copy the tree's files (git ls-files: tracked and new, not ignored;
#      no build directories) to OUTDIR/postern-VERSION
#   2. dpkg-buildpackage -b there (debhelper, meson through dh; the
#      package's own build directory, so ./build is untouched)
#   3. lintian on the .deb: any error fails; warnings are printed
# Result: OUTDIR/postern_VERSION_ARCH.deb (its path is the last line).
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$TOP/build/deb}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
VERSION=$(dpkg-parsechangelog -l "$TOP/debian/changelog" -S Version)
SRC="$OUT/postern-$VERSION"

rm -rf "$SRC" "$OUT"/postern_*
mkdir -p "$SRC"
cd "$TOP"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
	    xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
	    tar --null -T - -cf - | tar -xf - -C "$SRC"
else
	tar --exclude='./build*' --exclude='./postern-data' --exclude='./.git' \
	    -cf - . | tar -xf - -C "$SRC"
fi

cd "$SRC"
echo "building postern $VERSION in $SRC"
if ! dpkg-buildpackage -b -us -uc > "$OUT/build.log" 2>&1; then
	tail -n 40 "$OUT/build.log"
	echo "postern: dpkg-buildpackage failed (whole log: $OUT/build.log)" >&2
	exit 1
fi
DEB=$(ls "$OUT"/postern_"$VERSION"_*.deb)

# lintian: an E: fails the build; W: and I: are shown (there are none; a tag
# that stays on purpose goes into debian/postern.lintian-overrides with why).
lintian --info --display-info "$DEB" > "$OUT/lintian.log" 2>&1 || true
cat "$OUT/lintian.log"
if grep -q '^E: ' "$OUT/lintian.log"; then
	echo "postern: lintian found errors in $DEB" >&2
	exit 1
fi
rm -rf "$SRC"
echo "$DEB"
