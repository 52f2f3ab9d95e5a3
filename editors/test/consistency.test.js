// The keyword list, nn.pest, the standard library and the generated grammar
// agree. Adding a keyword to nn.pest without updating grammar/keywords.json
// and regenerating fails here.

'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { ROOT } = require('./lib/highlight');
const gen = require('../scripts/gen-tmlanguage.js');

const read = (rel) => fs.readFileSync(path.join(ROOT, rel), 'utf8');
const KW = JSON.parse(read('grammar/keywords.json'));
const PEST = read('grammar/nn.pest');
const sorted = (xs) => [...new Set(xs)].sort();

/** Quoted words in the body of pest rule `name` (up to the next rule). */
function pestRuleWords(name) {
  const lines = PEST.split('\n');
  const start = lines.findIndex((l) => new RegExp(`^${name}\\s*=`).test(l));
  assert.notEqual(start, -1, `no rule \`${name}\` in grammar/nn.pest`);
  let end = start + 1;
  while (end < lines.length && !/^\w+\s*=/.test(lines[end])) end++;
  const body = lines
    .slice(start, end)
    .map((l) => l.replace(/\/\/.*$/, ''))
    .join('\n');
  return [...body.matchAll(/"([A-Za-z_][A-Za-z0-9_]*)"/g)].map((m) => m[1]);
}

const hasRule = (name) => new RegExp(`^${name}\\s*=`, 'm').test(PEST);
const contextualRule = () => (hasRule('contextual_keyword') ? pestRuleWords('contextual_keyword') : []);

test('keywords.json reserved words equal the `keyword` (+ `contextual_keyword`) rules of nn.pest', () => {
  const reserved = [
    ...KW.declarations, ...KW.statements, ...KW.sections,
    ...KW.control, ...KW.operators_words, ...KW.constants,
  ];
  assert.equal(new Set(reserved).size, reserved.length, 'a word is in two reserved-word lists');
  assert.deepEqual(sorted(KW.contextual), sorted(contextualRule()), 'contextual = the contextual_keyword rule');
  const always = reserved.filter((w) => !KW.contextual.includes(w));
  assert.deepEqual(sorted(always), sorted(pestRuleWords('keyword')), 'the keyword rule');
  for (const w of KW.contextual) assert.ok(reserved.includes(w), `contextual "${w}" has no category`);
});

test('keywords.json agrees with the other word rules of nn.pest', () => {
  assert.deepEqual(sorted(KW.sections), sorted(pestRuleWords('section_kind')), 'section_kind');
  assert.deepEqual(sorted(KW.dtypes), sorted(pestRuleWords('dtype')), 'dtype');
  assert.deepEqual(sorted(KW.hyper_types), sorted(pestRuleWords('hyper_type')), 'hyper_type');
  assert.deepEqual(sorted(KW.constants), sorted([...pestRuleWords('boolean'), ...pestRuleWords('training')]));
  // Every `kw_*` token is a reserved word.
  const kwTokens = [...PEST.matchAll(/^kw_(\w+)\s*=/gm)].map((m) => m[1]);
  const keywords = [...pestRuleWords('keyword'), ...contextualRule()];
  for (const w of kwTokens) assert.ok(keywords.includes(w), `kw_${w} is not a keyword`);
});

test('keywords.json stdlib equals the blocks of stdlib/*.nn', () => {
  const blocks = fs
    .readdirSync(path.join(ROOT, 'stdlib'))
    .filter((f) => f.endsWith('.nn'))
    .flatMap((f) => [...read(path.join('stdlib', f)).matchAll(/^\s*block\s+([A-Za-z_]\w*)\s*\(/gm)].map((m) => m[1]));
  assert.ok(blocks.length > 0);
  assert.equal(new Set(KW.stdlib).size, KW.stdlib.length, 'duplicate in keywords.json stdlib');
  assert.deepEqual(sorted(KW.stdlib), sorted(blocks));
});

test('no word list repeats a word', () => {
  for (const [key, list] of Object.entries(KW)) {
    if (!Array.isArray(list)) continue;
    assert.equal(new Set(list).size, list.length, `duplicate in keywords.json ${key}`);
  }
});

test('the committed grammars equal the generator output', () => {
  const expected = gen.generate();
  for (const out of gen.OUTPUTS) {
    const rel = path.relative(ROOT, out);
    assert.ok(fs.existsSync(out), `${rel} missing: run node editors/scripts/gen-tmlanguage.js`);
    assert.equal(fs.readFileSync(out, 'utf8'), expected, `${rel} is stale: run node editors/scripts/gen-tmlanguage.js`);
  }
});

test('the VS Code extension points at its grammar', () => {
  const pkg = JSON.parse(read('editors/vscode/package.json'));
  const [lang] = pkg.contributes.languages;
  assert.equal(lang.id, 'nn');
  assert.deepEqual(lang.extensions, ['.nn']);
  const [grammar] = pkg.contributes.grammars;
  assert.equal(grammar.language, 'nn');
  assert.equal(grammar.scopeName, 'source.nn');
  const grammarFile = path.join(ROOT, 'editors', 'vscode', grammar.path);
  assert.ok(fs.existsSync(grammarFile), grammar.path);
  assert.equal(JSON.parse(fs.readFileSync(grammarFile, 'utf8')).scopeName, 'source.nn');
  const config = JSON.parse(read(path.join('editors', 'vscode', lang.configuration)));
  assert.equal(config.comments.lineComment, '#');
});

// Cross-checks with the compiler's own tables. A table that moved fails the
// test (a skip would guard nothing): a refactor of src/ updates the path.
function rustNames(rel, pattern) {
  const file = path.join(ROOT, rel);
  if (!fs.existsSync(file)) return null;
  const m = pattern.exec(fs.readFileSync(file, 'utf8'));
  return m ? m[1] : null;
}

test('builtins equal the BUILTINS table of the checker', (t) => {
  const body = rustNames('src/check/builtins/mod.rs', /const BUILTINS[^=]*=\s*&\[([\s\S]*?)\n\];/);
  assert.notEqual(body, null, 'src/check/builtins/mod.rs has no BUILTINS table');
  // `    ("exp", &[...]),` or `    (\n        "pad",\n        &[...]),`
  const names = [...body.matchAll(/^ {4}\(\s*"(\w+)"/gm)].map((m) => m[1]);
  assert.deepEqual(sorted(KW.builtins), sorted(names));
});

test('settings words equal the schemas of the checker', () => {
  const file = path.join(ROOT, 'src', 'check', 'schemas.rs');
  assert.ok(fs.existsSync(file), 'no src/check/schemas.rs');
  const src = fs.readFileSync(file, 'utf8');
  const table = (name) => {
    const m = new RegExp(`pub const ${name}: &\\[Schema\\] = &\\[([\\s\\S]*?)\\n\\];`).exec(src);
    if (!m) return null;
    return [...m[1].matchAll(/name: "(\w+)"|^ {4}\w+\("(\w+)"/gm)].map((x) => x[1] || x[2]);
  };
  const words = (name) => {
    const m = new RegExp(`const ${name}: &\\[&str\\] = &\\[([^\\]]*)\\]`).exec(src);
    return m ? [...m[1].matchAll(/"(\w+)"/g)].map((x) => x[1]) : null;
  };
  const checks = [
    ['data_sources + synthetic_tasks', table('DATA_SOURCES'), [...KW.data_sources.filter((w) => w !== 'synthetic'), ...KW.synthetic_tasks]],
    ['optimizers', table('OPTIMIZERS'), KW.optimizers],
    ['schedules', table('SCHEDULES'), KW.schedules],
    ['generate_methods', table('METHODS'), KW.generate_methods],
    ['augments', table('AUGMENTS'), KW.augments],
    ['metrics', words('METRICS'), KW.metrics],
  ];
  for (const [key, actual, expected] of checks) {
    assert.notEqual(actual, null, `${key}: its table is not in src/check/schemas.rs`);
    assert.deepEqual(sorted(expected), sorted(actual), key);
  }
});

// The tree-sitter grammar takes its words from keywords.json (grammar.js
// requires it); the generated parser must not have drifted from it, and the
// highlight query must name only words of the grammar.
test('the tree-sitter grammar and its highlights use the words of keywords.json', () => {
  const ts = JSON.parse(read('editors/tree-sitter-nn/src/grammar.json'));
  const words = new Set();
  (function walk(node) {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node && typeof node === 'object') {
      if (node.type === 'STRING' && /^[A-Za-z_]\w*$/.test(node.value)) words.add(node.value);
      Object.values(node).forEach(walk);
    }
  })(ts.rules);
  const reserved = [
    ...KW.declarations, ...KW.statements, ...KW.sections,
    ...KW.control, ...KW.operators_words, ...KW.constants,
  ];
  const known = new Set([...reserved, ...KW.dtypes, ...KW.hyper_types]);
  assert.deepEqual(sorted(words), sorted(known), 'the words of src/grammar.json (run tree-sitter generate)');
  const source = read('editors/tree-sitter-nn/grammar.js');
  assert.match(source, /require\('\.\.\/\.\.\/grammar\/keywords\.json'\)/);

  const highlights = read('editors/tree-sitter-nn/queries/highlights.scm').replace(/;.*$/gm, '');
  const quoted = [...highlights.matchAll(/"([A-Za-z_]\w*)"/g)].map((m) => m[1]);
  assert.deepEqual(sorted(quoted), sorted(reserved.filter((w) => !KW.constants.includes(w))),
    'highlights.scm quotes every reserved word but true/false/training (nodes of their own)');
});
