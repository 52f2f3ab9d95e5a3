// Loads grammar/nn.tmLanguage.json with the engine VS Code uses
// (vscode-textmate + vscode-oniguruma) and tokenizes .nn text.

'use strict';

const fs = require('fs');
const path = require('path');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const GRAMMAR = path.join(ROOT, 'grammar', 'nn.tmLanguage.json');

let grammarPromise = null;

async function createGrammar() {
  const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (sources) => new oniguruma.OnigScanner(sources),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async (scopeName) => {
      if (scopeName !== 'source.nn') return null;
      return vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR, 'utf8'), GRAMMAR);
    },
  });
  const grammar = await registry.loadGrammar('source.nn');
  if (!grammar) throw new Error(`could not load ${GRAMMAR}`);
  return grammar;
}

/** The grammar, loaded once per process. */
function loadGrammar() {
  if (!grammarPromise) grammarPromise = createGrammar();
  return grammarPromise;
}

/**
 * Tokenizes `text`; returns one entry per line:
 * `{ line, tokens: [{ text, start, scopes }] }` with `scopes` outermost first
 * (always starting with `source.nn`).
 */
async function tokenize(text) {
  const grammar = await loadGrammar();
  let state = vsctm.INITIAL;
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines.map((line) => {
    const result = grammar.tokenizeLine(line, state);
    state = result.ruleStack;
    const tokens = result.tokens
      .map((t) => ({ text: line.slice(t.startIndex, t.endIndex), start: t.startIndex, scopes: t.scopes }))
      .filter((t) => t.text.length > 0);
    return { line, tokens };
  });
}

/** Scopes of a token other than the root `source.nn`. */
function extraScopes(token) {
  return token.scopes.filter((s) => s !== 'source.nn');
}

/**
 * A readable dump: each source line, then one row per token that is not
 * plain whitespace: the token text (JSON-quoted) and its scopes.
 */
function dump(lines) {
  const out = [];
  lines.forEach(({ line, tokens }, i) => {
    out.push(`${String(i + 1).padStart(3)}| ${line}`.trimEnd());
    for (const token of tokens) {
      const scopes = extraScopes(token);
      if (scopes.length === 0 && token.text.trim() === '') continue;
      const text = JSON.stringify(token.text);
      out.push(`   |   ${text.padEnd(16)} ${scopes.join(' ')}`.trimEnd());
    }
  });
  return out.join('\n') + '\n';
}

module.exports = { ROOT, GRAMMAR, loadGrammar, tokenize, extraScopes, dump };
