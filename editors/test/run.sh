#!/bin/sh
# Editor support tests (called from .ci/run): the TextMate grammar and the
# VS Code extension (node), the tree-sitter grammar against the compiler's
# examples and fixtures (cargo), and headless Neovim driving `nnc lsp`.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
node --test
root="$(cd ../.. && pwd)"
[ -x "$root/target/debug/nnc" ] || (cd "$root" && cargo build --locked --bin nnc)
NNC="$root/target/debug/nnc" cargo test --locked --quiet \
  --manifest-path ../tree-sitter-nn/Cargo.toml --target-dir "$root/target"
NNC="$root/target/debug/nnc" sh nvim/run.sh
