#!/usr/bin/env bash
# Regenerates test/fixtures/hv-abi.json from Xen's public headers (Debian libxen-dev) with
# gcc -m32 (gcc-multilib). Usage: gen-abi-fixture.sh [OUT] [INCLUDE_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../test/fixtures/hv-abi.json}"
inc="${2:-/usr/include}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
gcc -m32 -std=gnu11 -Wall -Werror -I"$inc" -o "$tmp/abi32" "$here/hv-abi.c"
"$tmp/abi32" > "$tmp/abi32.json"
node -e '
const fs = require("fs");
const [a32, out] = process.argv.slice(1);
const version = process.env.LIBXEN_VERSION ?? "unknown";
const j = { source: "Debian libxen-dev " + version + ", gcc -m32", x86_32: JSON.parse(fs.readFileSync(a32, "utf8")) };
fs.writeFileSync(out, JSON.stringify(j, null, 1) + "\n");
' "$tmp/abi32.json" "$out"
echo "wrote $out"
