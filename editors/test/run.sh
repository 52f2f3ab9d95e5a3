#!/bin/sh
# Highlighting tests of the .nn TextMate grammar (called from .ci/run).
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
node --test
