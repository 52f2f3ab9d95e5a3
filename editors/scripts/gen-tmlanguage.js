#!/usr/bin/env node
// Generates the TextMate grammar of the .nn language from grammar/keywords.json.
//
//   node editors/scripts/gen-tmlanguage.js           write both grammar copies
//   node editors/scripts/gen-tmlanguage.js --check   exit 1 if either is stale
//
// Outputs (identical files, both committed):
//   grammar/nn.tmLanguage.json                  the grammar next to nn.pest
//   editors/vscode/syntaxes/nn.tmLanguage.json  the copy the VS Code extension ships
//
// No dependencies: plain Node (>= 18).

'use strict';

const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
const KEYWORDS = path.join(ROOT, 'grammar', 'keywords.json');
const OUTPUTS = [
  path.join(ROOT, 'grammar', 'nn.tmLanguage.json'),
  path.join(ROOT, 'editors', 'vscode', 'syntaxes', 'nn.tmLanguage.json'),
];

const IDENT = '[A-Za-z_][A-Za-z0-9_]*';

function escapeRegex(word) {
  return word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `(a|b|c)` for whole words; longest first so no alternative shadows another. */
function words(list) {
  if (list.length === 0) throw new Error('empty word list in a pattern');
  const sorted = [...new Set(list)].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
  return `(${sorted.map(escapeRegex).join('|')})`;
}

function without(list, remove) {
  const drop = new Set(remove);
  return list.filter((w) => !drop.has(w));
}

function loadKeywords(file = KEYWORDS) {
  const kw = JSON.parse(fs.readFileSync(file, 'utf8'));
  const required = [
    'declarations', 'statements', 'sections', 'control', 'operators_words', 'constants',
    'contextual', 'dtypes', 'hyper_types', 'builtins', 'initializers', 'stdlib',
    'data_sources', 'synthetic_tasks', 'augments', 'optimizers', 'schedules',
    'generate_methods', 'metrics', 'reports',
  ];
  for (const key of required) {
    if (!Array.isArray(kw[key]) || kw[key].length === 0) {
      throw new Error(`${file}: "${key}" must be a non-empty array of words`);
    }
    for (const w of kw[key]) {
      if (typeof w !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(w)) {
        throw new Error(`${file}: "${key}" holds ${JSON.stringify(w)}, not a word`);
      }
    }
  }
  for (const w of kw.contextual) {
    // Contextual words are highlighted only where they start something:
    // declarations at the start of a line, statements through `param-statement`.
    const where = kw.declarations.includes(w) || ['param', 'state'].includes(w);
    if (!where) throw new Error(`${file}: no rule highlights the contextual keyword "${w}"`);
  }
  if (!kw.data_sources.includes('synthetic')) {
    throw new Error(`${file}: "data_sources" must list the "synthetic" namespace`);
  }
  return kw;
}

function buildGrammar(kw) {
  // Words that are keywords everywhere; contextual ones have their own rules.
  const everywhere = (list) => without(list, kw.contextual);
  // A dtype that is also a hyper type (`bool`) is a dtype only before `[`;
  // the `shape` rule handles that case.
  const plainDtypes = without(kw.dtypes, kw.hyper_types);
  // `f32(x)` / `i32(x)` are casts: scoped as types, like in `f32[B]`.
  const builtins = without(kw.builtins, kw.dtypes);
  const bareSources = [...without(kw.data_sources, ['synthetic']), ...kw.synthetic_tasks];

  const repository = {};

  repository.comment = {
    name: 'comment.line.number-sign.nn',
    match: '(#).*$',
    captures: { 1: { name: 'punctuation.definition.comment.nn' } },
  };

  repository.string = {
    name: 'string.quoted.double.nn',
    begin: '"',
    beginCaptures: { 0: { name: 'punctuation.definition.string.begin.nn' } },
    // Strings cannot span lines (nn.pest): an unterminated one stops at the end of the line.
    end: '(")|$',
    endCaptures: { 1: { name: 'punctuation.definition.string.end.nn' } },
    patterns: [
      { name: 'constant.character.escape.nn', match: '\\\\["\\\\nt]' },
      { name: 'invalid.illegal.escape.nn', match: '\\\\.' },
    ],
  };

  repository.number = {
    patterns: [
      // 0.5, 1e-3, 2.5E+4: one token each. `4..12` is 4, .., 12.
      { name: 'constant.numeric.nn', match: '\\b[0-9]+(?:\\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+)\\b' },
      { name: 'constant.numeric.nn', match: '\\b[0-9]+\\b' },
    ],
  };

  // Declarations whose name (and, for some, value) we can see on one line.
  const declarations = [];
  for (const kind of ['block', 'model']) {
    if (!kw.declarations.includes(kind)) continue;
    declarations.push({
      match: `\\b(${kind})\\s+(${IDENT})`,
      captures: {
        1: { name: `storage.type.${kind}.nn` },
        2: { name: 'entity.name.function.nn' },
      },
    });
  }
  if (kw.declarations.includes('data')) {
    declarations.push({
      match:
        `\\b(data)\\s+(${IDENT})(?:\\s*(=)\\s*(?:${words(bareSources)}` +
        `|(synthetic)\\s*(\\.)\\s*${words(kw.synthetic_tasks)})\\b)?`,
      captures: {
        1: { name: 'storage.type.data.nn' },
        2: { name: 'variable.other.definition.nn' },
        3: { name: 'keyword.operator.nn' },
        4: { name: 'support.function.data.nn' },
        5: { name: 'support.function.data.nn' },
        6: { name: 'punctuation.accessor.nn' },
        7: { name: 'support.function.data.nn' },
      },
    });
  }
  if (kw.declarations.includes('const')) {
    declarations.push({
      match: `\\b(const)\\s+(${IDENT})`,
      captures: {
        1: { name: 'storage.type.const.nn' },
        2: { name: 'variable.other.definition.nn' },
      },
    });
  }
  if (kw.declarations.includes('dim')) {
    // `dim B, T`: only at the start of a line (an item), since stdlib code
    // also uses `dim` as a name.
    declarations.push({
      match: `^\\s*(dim)\\s+(${IDENT}(?:\\s*,\\s*${IDENT})*)`,
      captures: {
        1: { name: 'storage.type.dim.nn' },
        2: {
          patterns: [
            { name: 'variable.other.definition.nn', match: IDENT },
            { name: 'punctuation.separator.comma.nn', match: ',' },
          ],
        },
      },
    });
  }
  for (const w of kw.declarations.filter((d) => kw.contextual.includes(d))) {
    // `loss cross_entropy(...)`, `dim B` start an item; `loss = ...`,
    // `dim: int`, `f(dim)` use the word as a name.
    declarations.push({
      match: `^\\s*(${escapeRegex(w)})\\b(?!\\s*(?:[=:,.)\\]}]|$))`,
      captures: { 1: { name: `storage.type.${w}.nn` } },
    });
  }
  if (kw.declarations.includes('optimizer')) {
    declarations.push({
      match: `\\b(optimizer)\\s+${words(kw.optimizers)}\\b`,
      captures: {
        1: { name: 'storage.type.optimizer.nn' },
        2: { name: 'support.function.optimizer.nn' },
      },
    });
  }
  if (kw.declarations.includes('schedule')) {
    declarations.push({
      match: `\\b(schedule)\\s+${words(kw.schedules)}\\b`,
      captures: {
        1: { name: 'storage.type.schedule.nn' },
        2: { name: 'support.function.schedule.nn' },
      },
    });
  }
  if (kw.control.includes('then')) {
    declarations.push({
      match: `\\b(then)\\s+${words(kw.schedules)}\\b`,
      captures: {
        1: { name: 'keyword.control.nn' },
        2: { name: 'support.function.schedule.nn' },
      },
    });
  }
  repository.declaration = { patterns: declarations };

  // `param w: f32[I, out] = xavier`, `state m: f32[C] = zeros`: the name, and
  // initializer names in the default.
  const stmtKinds = kw.statements.filter((w) => w === 'param' || w === 'state');
  repository['param-statement'] = {
    begin: `\\b${words(stmtKinds)}\\s+(${IDENT})\\s*(:)`,
    beginCaptures: {
      1: { name: 'keyword.other.nn' },
      2: { name: 'variable.other.definition.nn' },
      3: { name: 'punctuation.separator.colon.nn' },
    },
    end: '(?=[;}#])|$',
    patterns: [
      { name: 'support.function.initializer.nn', match: `\\b${words(kw.initializers)}\\b` },
      { include: '#expression' },
    ],
  };

  // Section settings whose values are words of their own.
  const wordList = (label, list, scope) => [
    {
      begin: `\\b(${label})\\s*(:)\\s*(\\[)`,
      beginCaptures: {
        1: { name: 'variable.parameter.nn' },
        2: { name: 'punctuation.separator.colon.nn' },
        3: { name: 'punctuation.section.brackets.begin.nn' },
      },
      end: '\\]',
      endCaptures: { 0: { name: 'punctuation.section.brackets.end.nn' } },
      patterns: [
        { name: scope, match: `\\b${words(list)}\\b` },
        { include: '#expression-in-brackets' },
      ],
    },
    {
      match: `\\b(${label})\\s*(:)\\s*${words(list)}\\b`,
      captures: {
        1: { name: 'variable.parameter.nn' },
        2: { name: 'punctuation.separator.colon.nn' },
        3: { name: scope },
      },
    },
  ];
  repository.setting = {
    patterns: [
      ...wordList('metrics', kw.metrics, 'support.constant.metric.nn'),
      ...wordList('report', kw.reports, 'support.constant.report.nn'),
      ...wordList('augment', kw.augments, 'support.function.augment.nn'),
      ...wordList('method', kw.generate_methods, 'support.function.method.nn'),
    ],
  };

  // `name:` in a signature, a call or a section; not `H:` in a slice (the
  // `list` rule, for brackets, leaves this out).
  repository.label = {
    match: `\\b(${IDENT})\\s*(:)(?!:)`,
    captures: {
      1: { name: 'variable.parameter.nn' },
      2: { name: 'punctuation.separator.colon.nn' },
    },
  };

  repository.shape = {
    name: 'meta.shape.nn',
    begin: `\\b${words(kw.dtypes)}\\s*(\\[)`,
    beginCaptures: {
      1: { name: 'support.type.dtype.nn' },
      2: { name: 'punctuation.section.brackets.begin.nn' },
    },
    end: '\\]',
    endCaptures: { 0: { name: 'punctuation.section.brackets.end.nn' } },
    patterns: [{ include: '#expression-in-brackets' }],
  };

  repository.group = {
    begin: '\\(',
    beginCaptures: { 0: { name: 'punctuation.section.parens.begin.nn' } },
    end: '\\)',
    endCaptures: { 0: { name: 'punctuation.section.parens.end.nn' } },
    patterns: [{ include: '#expression' }],
  };

  repository.list = {
    begin: '\\[',
    beginCaptures: { 0: { name: 'punctuation.section.brackets.begin.nn' } },
    end: '\\]',
    endCaptures: { 0: { name: 'punctuation.section.brackets.end.nn' } },
    patterns: [{ include: '#expression-in-brackets' }],
  };

  const keywordPatterns = [];
  for (const w of everywhere(kw.declarations)) {
    keywordPatterns.push({ name: `storage.type.${w}.nn`, match: `\\b${escapeRegex(w)}\\b` });
  }
  keywordPatterns.push(
    { name: 'keyword.control.nn', match: `\\b${words(everywhere(kw.control))}\\b` },
    { name: 'keyword.other.nn', match: `\\b${words(everywhere([...kw.statements, ...kw.sections]))}\\b` },
    { name: 'keyword.operator.nn', match: `\\b${words(everywhere(kw.operators_words))}\\b` },
    { name: 'constant.language.nn', match: `\\b${words(everywhere(kw.constants))}\\b` },
  );
  repository.keyword = { patterns: keywordPatterns };

  repository.type = {
    patterns: [
      { name: 'support.type.dtype.nn', match: `\\b${words(plainDtypes)}\\b` },
      { name: 'support.type.nn', match: `\\b${words(kw.hyper_types)}\\b` },
    ],
  };

  repository.support = {
    patterns: [
      { name: 'support.function.builtin.nn', match: `\\b${words(builtins)}\\b` },
      { name: 'support.function.nn', match: `\\b${words(kw.stdlib)}\\b` },
    ],
  };

  repository.operator = {
    patterns: [
      { name: 'keyword.operator.ellipsis.nn', match: '\\.\\.\\.' },
      { name: 'keyword.operator.nn', match: '->|==|!=|<=|>=|\\.\\.|[-+*/@<>=]' },
      {
        // `plays.x`, `pairs.val`: a field, even when it is spelled like a keyword.
        match: `(\\.)\\s*(${IDENT})`,
        captures: {
          1: { name: 'punctuation.accessor.nn' },
          2: { name: 'variable.other.member.nn' },
        },
      },
    ],
  };

  repository.punctuation = {
    patterns: [
      { name: 'punctuation.separator.comma.nn', match: ',' },
      { name: 'punctuation.separator.colon.nn', match: ':' },
      { name: 'punctuation.terminator.nn', match: ';' },
      { name: 'punctuation.section.braces.begin.nn', match: '\\{' },
      { name: 'punctuation.section.braces.end.nn', match: '\\}' },
    ],
  };

  // Order matters only between rules that match at the same position.
  const common = [
    '#comment', '#string', '#declaration', '#param-statement', '#number',
    '#shape', '#group', '#list', '#keyword', '#type', '#operator', '#punctuation', '#support',
  ];
  const withLabels = [...common];
  withLabels.splice(common.indexOf('#param-statement') + 1, 0, '#setting', '#label');
  repository.expression = { patterns: withLabels.map((include) => ({ include })) };
  repository['expression-in-brackets'] = { patterns: common.map((include) => ({ include })) };

  const sortedRepository = {};
  for (const key of Object.keys(repository).sort()) sortedRepository[key] = repository[key];

  return {
    $schema: 'https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json',
    information_for_contributors: [
      'Generated by editors/scripts/gen-tmlanguage.js from grammar/keywords.json. Do not edit:',
      'change the generator or the keyword list and run `node editors/scripts/gen-tmlanguage.js`.',
    ],
    name: 'nn',
    scopeName: 'source.nn',
    fileTypes: ['nn'],
    patterns: [{ include: '#expression' }],
    repository: sortedRepository,
  };
}

/** The grammar file's text, as written to disk. */
function generate(file = KEYWORDS) {
  return JSON.stringify(buildGrammar(loadKeywords(file)), null, 2) + '\n';
}

function main(argv) {
  const check = argv.includes('--check');
  const text = generate();
  let stale = 0;
  for (const out of OUTPUTS) {
    const rel = path.relative(ROOT, out);
    const current = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : null;
    if (current === text) continue;
    if (check) {
      console.error(`${rel} is out of date: run node editors/scripts/gen-tmlanguage.js`);
      stale++;
    } else {
      fs.mkdirSync(path.dirname(out), { recursive: true });
      fs.writeFileSync(out, text);
      console.log(`wrote ${rel}`);
    }
  }
  return stale ? 1 : 0;
}

module.exports = { generate, buildGrammar, loadKeywords, OUTPUTS, KEYWORDS, ROOT };

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
