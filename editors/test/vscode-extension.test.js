// The VS Code extension starts `nnc lsp` when nnc is found (the `nnc.path`
// setting or the PATH) and stays a highlighting-only extension otherwise.
// `vscode` and `vscode-languageclient` are stood in for by fakes that record
// what the extension asks of them.

'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const Module = require('module');
const { ROOT } = require('./lib/highlight');

const EXTENSION = path.join(ROOT, 'editors', 'vscode', 'extension.js');

function withFakes(settings, run) {
  const clients = [];
  const lines = [];
  class LanguageClient {
    constructor(id, name, server, options) {
      Object.assign(this, { id, name, server, options, started: false });
      clients.push(this);
    }
    start() { this.started = true; }
    stop() { this.started = false; }
  }
  const vscode = {
    workspace: { getConfiguration: (section) => ({ get: (key, fallback) => (key in settings ? settings[key] : fallback) }) },
    window: { createOutputChannel: () => ({ appendLine: (l) => lines.push(l), dispose() {} }) },
  };
  const load = Module._load;
  Module._load = function (request, ...rest) {
    if (request === 'vscode') return vscode;
    if (request === 'vscode-languageclient/node') return { LanguageClient };
    return load.call(this, request, ...rest);
  };
  try {
    delete require.cache[EXTENSION];
    const extension = require(EXTENSION);
    const context = { subscriptions: [] };
    extension.activate(context);
    run({ clients, lines, context, extension });
  } finally {
    Module._load = load;
  }
}

test('starts `nnc lsp` with the configured binary', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nnc-ext-'));
  const nnc = path.join(dir, 'nnc');
  fs.writeFileSync(nnc, '#!/bin/sh\n', { mode: 0o755 });
  withFakes({ path: nnc }, ({ clients, context }) => {
    assert.equal(clients.length, 1);
    const [client] = clients;
    assert.deepEqual(client.server, { command: nnc, args: ['lsp'] });
    assert.deepEqual(client.options.documentSelector, [{ scheme: 'file', language: 'nn' }]);
    assert.equal(client.started, true);
    assert.equal(context.subscriptions.length, 1);
  });
  fs.rmSync(dir, { recursive: true });
});

test('finds nnc on the PATH, and only highlights without it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nnc-ext-'));
  fs.writeFileSync(path.join(dir, 'nnc'), '#!/bin/sh\n', { mode: 0o755 });
  withFakes({}, ({ extension }) => {
    assert.equal(extension.resolveCommand('nnc', { PATH: `/nonexistent${path.delimiter}${dir}` }), path.join(dir, 'nnc'));
    assert.equal(extension.resolveCommand('nnc', { PATH: '/nonexistent' }), null);
  });
  withFakes({ path: path.join(dir, 'missing-nnc') }, ({ clients, lines }) => {
    assert.equal(clients.length, 0);
    assert.match(lines.join('\n'), /highlighting only/);
  });
  withFakes({ path: path.join(dir, 'nnc'), 'lsp.enabled': false }, ({ clients }) => assert.equal(clients.length, 0));
  fs.rmSync(dir, { recursive: true });
});

test('the manifest declares the entry point, the settings and the client library', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'editors', 'vscode', 'package.json'), 'utf8'));
  assert.equal(pkg.main, './extension.js');
  assert.deepEqual(pkg.activationEvents, ['onLanguage:nn']);
  assert.equal(pkg.contributes.configuration.properties['nnc.path'].default, 'nnc');
  assert.ok(pkg.dependencies['vscode-languageclient']);
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'editors', 'vscode', 'package-lock.json'), 'utf8'));
  assert.ok(lock.packages['node_modules/vscode-languageclient'], 'package-lock.json pins the client');
});
