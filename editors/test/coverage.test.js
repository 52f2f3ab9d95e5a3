// Every non-blank line of the examples and the standard library carries at
// least one meaningful scope (not just source.nn, punctuation or meta),
// unless it holds only plain names and punctuation (`}`, `x`, `y + b` is not).

'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { ROOT, tokenize, extraScopes } = require('./lib/highlight');

const PLAIN_LINE = /^[\s\w,;:.()[\]{}]*$/;
const meaningful = (scope) => !scope.startsWith('punctuation.') && !scope.startsWith('meta.');

const files = ['examples', 'stdlib'].flatMap((dir) =>
  fs
    .readdirSync(path.join(ROOT, dir))
    .filter((f) => f.endsWith('.nn'))
    .sort()
    .map((f) => path.join(dir, f)),
);

for (const file of files) {
  test(`every line of ${file} is highlighted`, async () => {
    const lines = await tokenize(fs.readFileSync(path.join(ROOT, file), 'utf8'));
    const bare = [];
    lines.forEach(({ line, tokens }, i) => {
      if (line.trim() === '' || PLAIN_LINE.test(line)) return;
      if (!tokens.some((t) => extraScopes(t).some(meaningful))) bare.push(`${file}:${i + 1}: ${line}`);
    });
    assert.deepEqual(bare, [], 'lines without any highlighted token');
  });
}
