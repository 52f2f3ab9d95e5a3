// Every examples/*.nn file, tokenized, against a committed dump in
// snapshots/<name>.txt. UPDATE_SNAPSHOTS=1 rewrites the dumps (review the diff).

'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { ROOT, tokenize, dump } = require('./lib/highlight');

const EXAMPLES = path.join(ROOT, 'examples');
const SNAPSHOTS = path.join(__dirname, 'snapshots');
const UPDATE = process.env.UPDATE_SNAPSHOTS === '1';

const examples = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.nn')).sort();
const snapshotOf = (file) => path.join(SNAPSHOTS, file.replace(/\.nn$/, '.txt'));

test('there are examples to tokenize', () => {
  assert.ok(examples.length > 0, `no .nn files in ${EXAMPLES}`);
});

for (const file of examples) {
  test(`snapshot of examples/${file}`, async () => {
    const actual = dump(await tokenize(fs.readFileSync(path.join(EXAMPLES, file), 'utf8')));
    const snapshot = snapshotOf(file);
    if (UPDATE) {
      fs.mkdirSync(SNAPSHOTS, { recursive: true });
      if (!fs.existsSync(snapshot) || fs.readFileSync(snapshot, 'utf8') !== actual) {
        fs.writeFileSync(snapshot, actual);
      }
      return;
    }
    assert.ok(
      fs.existsSync(snapshot),
      `missing ${path.relative(ROOT, snapshot)}: run UPDATE_SNAPSHOTS=1 node --test in editors/test`,
    );
    assert.equal(
      actual,
      fs.readFileSync(snapshot, 'utf8'),
      `tokens of examples/${file} changed: review, then run UPDATE_SNAPSHOTS=1 node --test in editors/test`,
    );
  });
}

test('no snapshot without its example', () => {
  const wanted = new Set(examples.map((f) => path.basename(snapshotOf(f))));
  const stale = fs.existsSync(SNAPSHOTS)
    ? fs.readdirSync(SNAPSHOTS).filter((f) => f.endsWith('.txt') && !wanted.has(f))
    : [];
  if (UPDATE) {
    for (const f of stale) fs.unlinkSync(path.join(SNAPSHOTS, f));
    return;
  }
  assert.deepEqual(stale, [], 'snapshots of removed examples: run UPDATE_SNAPSHOTS=1 node --test');
});
