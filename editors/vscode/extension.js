// Starts `nnc lsp` for .nn files when the `nnc` binary is found (the
// `nnc.path` setting, else `nnc` on the PATH): diagnostics as you type,
// hover with shapes, go to definition, completion, outline, formatting.
// Without it, the extension is what it was: TextMate highlighting.

'use strict';

const fs = require('fs');
const path = require('path');

let client = null;

/** The absolute path of `command`: itself if it has a slash, else from PATH. */
function resolveCommand(command, env = process.env) {
  const executable = (file) => {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return fs.statSync(file).isFile();
    } catch {
      return false;
    }
  };
  if (command.includes('/') || command.includes('\\')) return executable(command) ? path.resolve(command) : null;
  const exts = process.platform === 'win32' ? ['.exe', '.cmd', ''] : [''];
  for (const dir of (env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const file = path.join(dir, command + ext);
      if (executable(file)) return file;
    }
  }
  return null;
}

function activate(context) {
  const vscode = require('vscode');
  const config = vscode.workspace.getConfiguration('nnc');
  if (config.get('lsp.enabled', true) === false) return;
  const command = resolveCommand(config.get('path') || 'nnc');
  if (!command) {
    const output = vscode.window.createOutputChannel('nnc');
    output.appendLine('nnc not found (set `nnc.path`): highlighting only, no language server.');
    context.subscriptions.push(output);
    return;
  }
  const { LanguageClient } = require('vscode-languageclient/node');
  client = new LanguageClient(
    'nnc',
    'nnc language server',
    { command, args: ['lsp'] },
    { documentSelector: [{ scheme: 'file', language: 'nn' }] },
  );
  client.start();
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate, resolveCommand };
