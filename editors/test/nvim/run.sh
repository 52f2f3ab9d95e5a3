#!/bin/sh
# A real editor drives `nnc lsp`: headless Neovim opens a program with a
# shape error and must see the diagnostic (code and place) and a hover.
# Installs Neovim from Debian's packages when it is missing.
set -eu
cd "$(dirname "$0")/../../.."
command -v nvim >/dev/null 2>&1 || { apt-get update && apt-get install -y neovim; }
NNC="${NNC:-$PWD/target/debug/nnc}"
[ -x "$NNC" ] || cargo build --locked --bin nnc
result=$(mktemp)
export NNC NNC_RESULT="$result" NN_FILE="$PWD/tests/data/err/matmul_inner_mismatch.nn"
export XDG_CACHE_HOME="${TMPDIR:-/tmp}/nnc-nvim-cache"
timeout 120 nvim --headless --clean -c "luafile editors/test/nvim/lsp.lua" || {
  echo "nvim failed:"; cat "$result"; exit 1
}
cat "$result"
# The fixture's expectation (`# expect: E0302 @ 8:7`) and the shape of `x`.
grep -q '^diagnostic E0302 8:7 ' "$result" || { echo "FAIL: no E0302 at 8:7"; exit 1; }
grep -q '^hover .*x: f32\[B, 64\]' "$result" || { echo "FAIL: no hover with the shape of x"; exit 1; }
rm -f "$result"
echo "ok: Neovim $(nvim --version | head -1) sees the diagnostic and the hover"
