// Targeted highlighting checks on small snippets.

'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { ROOT, tokenize } = require('./lib/highlight');

const KW = JSON.parse(fs.readFileSync(path.join(ROOT, 'grammar', 'keywords.json'), 'utf8'));

/** Tokens overlapping the `nth` occurrence of `needle` in `source`. */
async function tokensAt(source, needle, nth = 0) {
  let index = -1;
  for (let i = 0; i <= nth; i++) {
    index = source.indexOf(needle, index + 1);
    assert.notEqual(index, -1, `${JSON.stringify(needle)} #${nth} not in ${JSON.stringify(source)}`);
  }
  const before = source.slice(0, index).split('\n');
  const lineNo = before.length - 1;
  const column = before[before.length - 1].length;
  const lines = await tokenize(source);
  return lines[lineNo].tokens.filter((t) => t.start < column + needle.length && t.start + t.text.length > column);
}

/** The one token that is exactly `needle`; fails if `needle` is split or merged. */
async function token(source, needle, nth = 0) {
  const tokens = await tokensAt(source, needle, nth);
  assert.equal(tokens.length, 1, `${JSON.stringify(needle)} is split: ${JSON.stringify(tokens)}`);
  assert.equal(tokens[0].text, needle, `${JSON.stringify(needle)} is part of ${JSON.stringify(tokens[0].text)}`);
  return tokens[0];
}

const has = (tok, prefix) => tok.scopes.some((s) => s === prefix || s.startsWith(prefix + '.'));

async function assertScope(source, needle, prefix, nth = 0) {
  const tok = await token(source, needle, nth);
  assert.ok(has(tok, prefix), `${JSON.stringify(needle)} in ${JSON.stringify(source)}: ${tok.scopes.join(' ')}, not ${prefix}`);
  return tok;
}

async function assertNoScope(source, needle, prefix, nth = 0) {
  for (const tok of await tokensAt(source, needle, nth)) {
    assert.ok(!has(tok, prefix), `${JSON.stringify(needle)} in ${JSON.stringify(source)} is ${tok.scopes.join(' ')}`);
  }
}

test('keywords inside comments are comment text', async () => {
  const src = '# block model if train param loss optimizer 1e-3 "str"';
  for (const word of ['block', 'model', 'if', 'train', 'param', '1e-3', '"str"']) {
    await assertNoScope(src, word, 'storage');
    await assertNoScope(src, word, 'keyword');
    await assertNoScope(src, word, 'constant');
    await assertNoScope(src, word, 'string');
  }
  const [tok] = await tokensAt(src, 'train');
  assert.ok(has(tok, 'comment.line.number-sign.nn'));
  await assertScope('x = 1  # then training', '#', 'punctuation.definition.comment.nn');
  await assertNoScope('x = 1  # then training', 'then', 'keyword');
});

test('keywords inside strings are string text', async () => {
  const src = 'data d = csv("block if train.csv", y: "loss")';
  for (const word of ['block', 'if', 'train', 'loss']) {
    await assertNoScope(src, word, 'keyword');
    await assertNoScope(src, word, 'storage');
    await assertNoScope(src, word, 'variable');
    const [tok] = await tokensAt(src, word);
    assert.ok(has(tok, 'string.quoted.double.nn'), `${word}: ${tok.scopes}`);
  }
});

test('string escapes, and an unterminated string stops at the end of the line', async () => {
  const src = 'p = "a\\"b\\n # not a comment"\nq = "open\nmodel zed() { 1 }';
  await assertScope(src, '\\"', 'constant.character.escape.nn');
  await assertScope(src, '\\n', 'constant.character.escape.nn');
  await assertNoScope(src, '# not', 'comment');
  await assertScope(src, 'model', 'storage.type.model.nn');
  await assertScope(src, 'zed', 'entity.name.function.nn');
});

test('numbers: exponents are one token', async () => {
  for (const n of ['1e-3', '2e-3', '1e9', '2.5E+4', '0.5', '42', '0.044715', '1e-5']) {
    const tok = await assertScope(`x = ${n} * y`, n, 'constant.numeric');
    assert.equal(tok.text, n);
  }
  const src = 'data p = reverse(len: 4..12)';
  await assertScope(src, '4', 'constant.numeric');
  await assertScope(src, '..', 'keyword.operator');
  await assertScope(src, '12', 'constant.numeric');
  await assertNoScope('y = conv2d(x, 8)', '2', 'constant.numeric');
  await assertScope('y = -1e9', '1e9', 'constant.numeric');
});

test('block and model names are entity.name.function', async () => {
  await assertScope('block foo(x: f32[B]) -> f32[B] { x }', 'foo', 'entity.name.function.nn');
  await assertScope('block foo(x: f32[B]) -> f32[B] { x }', 'block', 'storage.type.block.nn');
  await assertScope('model classifier(x: f32[B, 64]) -> f32[B, 10] {', 'classifier', 'entity.name.function.nn');
  await assertScope('model classifier(x: f32[B, 64]) -> f32[B, 10] {', 'model', 'storage.type.model.nn');
  await assertScope('const V = 80', 'V', 'variable.other.definition.nn');
  await assertScope('data plays = text("x.txt", context: T)', 'plays', 'variable.other.definition.nn');
  await assertScope('data plays = text("x.txt", context: T)', 'text', 'support.function.data.nn');
  await assertScope('data p = synthetic.sort(len: 2..5)', 'synthetic', 'support.function.data.nn');
  await assertScope('data p = synthetic.sort(len: 2..5)', 'sort', 'support.function.data.nn');
  await assertScope('dim B, T', 'T', 'variable.other.definition.nn');
  await assertScope('dim B, T', 'dim', 'storage.type.dim.nn');
});

test('signature parameters and named arguments are variable.parameter', async () => {
  const sig = 'block mlp2(x: f32[B, D], hidden: int = 4, act: fn = relu) -> f32[B, D] {';
  await assertScope(sig, 'x', 'variable.parameter.nn');
  await assertScope(sig, 'hidden', 'variable.parameter.nn');
  await assertScope(sig, 'act', 'variable.parameter.nn');
  await assertScope(sig, 'int', 'support.type.nn');
  await assertScope(sig, 'fn', 'support.type.nn');
  await assertScope(sig, 'relu', 'support.function.nn');
  const call = 'y = linear(x, 10, bias: false)';
  await assertScope(call, 'bias', 'variable.parameter.nn');
  await assertScope(call, 'false', 'constant.language.nn');
  // Labels may be spelled like keywords.
  await assertScope('data p = reverse(train: 20000, val: 10)', 'train', 'variable.parameter.nn');
  await assertScope('train { steps: 10, batch: 4 }', 'steps', 'variable.parameter.nn');
  // Slices are not labels.
  await assertNoScope('c = s[:, H:S]', 'H', 'variable.parameter');
  await assertNoScope('c = f(s[H:S])', 'H', 'variable.parameter');
});

test('shapes: dtypes, meta.shape, ellipsis', async () => {
  const src = 'block f(x: f32[..., N], m: bool[T, S], b: bool = true) -> i32[N] { x }';
  await assertScope(src, 'f32', 'support.type');
  await assertScope(src, 'f32', 'support.type.dtype.nn');
  await assertScope(src, 'i32', 'support.type.dtype.nn');
  await assertScope(src, 'bool', 'support.type.dtype.nn');
  await assertScope(src, 'bool', 'support.type.nn', 1);
  await assertNoScope(src, 'bool', 'support.type.dtype', 1);
  const [n] = await tokensAt(src, 'N');
  assert.ok(has(n, 'meta.shape.nn'), n.scopes.join(' '));
  await assertScope(src, '...', 'keyword.operator.ellipsis.nn');
  await assertScope(src, '[', 'meta.shape.nn');
  await assertScope('k = f32(mask)', 'f32', 'support.type.dtype.nn');
});

test('operators', async () => {
  for (const op of ['@', '=', '+', '-', '*', '/', '->', '==', '!=', '<=', '>=', '<', '>', '..']) {
    await assertScope(`a ${op} b`, op, 'keyword.operator.nn');
  }
  await assertScope('y = a @ b', '@', 'keyword.operator.nn');
  for (const op of ['and', 'or', 'not']) {
    await assertScope('s = a and not b or c', op, 'keyword.operator.nn');
  }
  await assertNoScope('s = android + order + nothing', 'and', 'keyword');
});

const always = (list) => list.filter((w) => !KW.contextual.includes(w));

test('reserved words get their scopes', async () => {
  for (const w of KW.declarations) await assertScope(`${w} x`, w, `storage.type.${w}.nn`);
  for (const w of always(KW.declarations)) await assertScope(`y = ${w}`, w, `storage.type.${w}.nn`);
  for (const w of always(KW.control)) await assertScope(`x = ${w}`, w, 'keyword.control.nn');
  for (const w of always([...KW.statements, ...KW.sections])) await assertScope(`x = ${w}`, w, 'keyword.other.nn');
  for (const w of always(KW.constants)) await assertScope(`x = ${w}`, w, 'constant.language.nn');
  // Not inside longer names.
  await assertNoScope('updated = training_steps + datum', 'update', 'keyword');
  await assertNoScope('updated = training_steps + datum', 'training', 'constant');
  await assertNoScope('updated = training_steps + datum', 'dat', 'storage');
  // A field may be spelled like a keyword.
  await assertScope('v = pairs.val + x.train', 'train', 'variable.other.member.nn');
});

test('contextual keywords are keywords only where they start something', async () => {
  assert.ok(KW.contextual.length > 0);
  for (const w of KW.contextual) {
    for (const src of [`y = ${w} + 1`, `block f(${w}: int) { ${w} }`, `y = g(${w}: 2, z: ${w})`, `    ${w} = 3`, `y = x.${w}`]) {
      const count = src.split(w).length - 1;
      for (let nth = 0; nth < count; nth++) {
        await assertNoScope(src, w, 'storage', nth);
        await assertNoScope(src, w, 'keyword', nth);
      }
    }
  }
  await assertScope('loss cross_entropy(m(d.x), d.y)', 'loss', 'storage.type.loss.nn');
  await assertScope('dim B, T', 'dim', 'storage.type.dim.nn');
  await assertScope('    state running: f32[C] = zeros', 'state', 'keyword.other.nn');
  await assertScope('    state running: f32[C] = zeros', 'running', 'variable.other.definition.nn');
  await assertNoScope('    h = state[:, 0:H]', 'state', 'keyword');
  await assertScope('eval { metrics: [loss, mae] }', 'loss', 'support.constant.metric.nn');
});

test('builtins, standard library, initializers', async () => {
  for (const w of KW.builtins) {
    const expected = KW.dtypes.includes(w) ? 'support.type.dtype.nn' : 'support.function.builtin.nn';
    await assertScope(`y = ${w}(x)`, w, expected);
  }
  for (const w of KW.stdlib) await assertScope(`y = ${w}(x)`, w, 'support.function.nn');
  for (const w of KW.initializers) {
    await assertScope(`    param w: f32[I, O] = ${w}`, w, 'support.function.initializer.nn');
  }
  await assertScope('    param w: f32[D] = normal(std: 0.02)', 'std', 'variable.parameter.nn');
  await assertScope('    param w: f32[D] = normal(std: 0.02)', 'w', 'variable.other.definition.nn');
  await assertScope('    state m: f32[C] = ones', 'ones', 'support.function.initializer.nn');
  await assertScope('y = ones([N, D])', 'ones', 'support.function.builtin.nn');
});

test('settings: optimizers, schedules, metrics, methods, augmentations', async () => {
  for (const w of KW.optimizers) await assertScope(`optimizer ${w}(lr: 0.1)`, w, 'support.function.optimizer.nn');
  for (const w of KW.schedules) {
    await assertScope(`optimizer sgd() schedule ${w}() then ${w}()`, w, 'support.function.schedule.nn');
    await assertScope(`optimizer sgd() schedule ${w}() then ${w}()`, w, 'support.function.schedule.nn', 1);
  }
  const metrics = `eval { metrics: [${KW.metrics.join(', ')}] }`;
  for (const w of KW.metrics) await assertScope(metrics, w, 'support.constant.metric.nn');
  await assertScope('eval { metrics: loss }', 'loss', 'support.constant.metric.nn');
  for (const w of KW.generate_methods) await assertScope(`generate { method: ${w}() }`, w, 'support.function.method.nn');
  for (const w of KW.augments) await assertScope(`data d = csv("f", augment: [${w}(1)])`, w, 'support.function.augment.nn');
  for (const w of KW.reports) await assertScope(`analyze { report: [${w}] }`, w, 'support.constant.report.nn');
});
