#!/usr/bin/env bash
# Regenerates test/fixtures/xen-abi.json from Xen's public headers (Debian libxen-dev) with
# gcc -m32 and -m64 (gcc-multilib). Usage: gen-abi-fixture.sh [OUT] [INCLUDE_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../test/fixtures/xen-abi.json}"
inc="${2:-/usr/include}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for bits in 32 64; do
  gcc -m"$bits" -std=c11 -Wall -Werror -I"$inc" -o "$tmp/abi$bits" "$here/xen-abi.c"
  "$tmp/abi$bits" > "$tmp/abi$bits.json"
done
version="$(dpkg-query -W -f='${Version}' libxen-dev 2>/dev/null || echo unknown)"
node -e '
const fs = require("fs");
const [a32, a64, version, out] = process.argv.slice(1);
const j = { source: "Debian libxen-dev " + version + ", gcc -m32 / -m64", x86_32: JSON.parse(fs.readFileSync(a32, "utf8")), x86_64: JSON.parse(fs.readFileSync(a64, "utf8")) };
fs.writeFileSync(out, JSON.stringify(j, null, 1) + "\n");
' "$tmp/abi32.json" "$tmp/abi64.json" "$version" "$out"
echo "wrote $out"
