-- Headless Neovim as the client of `nnc lsp`: opens a program with a shape
-- error, waits for the server's diagnostic, checks its code and place,
-- asks for a hover, and writes what it saw to $NNC_RESULT.
-- Works with Neovim 0.7 (vim.lsp.start_client) and later (vim.lsp.start).

local nnc = assert(os.getenv('NNC'), 'NNC: path of the nnc binary')
local file = assert(os.getenv('NN_FILE'), 'NN_FILE: the .nn file to open')
local result = assert(os.getenv('NNC_RESULT'), 'NNC_RESULT: where to write')

local function finish(lines, code)
  local out = io.open(result, 'w')
  out:write(table.concat(lines, '\n') .. '\n')
  out:close()
  vim.cmd(code == 0 and 'qall!' or 'cquit ' .. code)
end

vim.cmd('edit ' .. vim.fn.fnameescape(file))
local buf = vim.api.nvim_get_current_buf()
local config = { name = 'nnc', cmd = { nnc, 'lsp' }, root_dir = vim.fn.fnamemodify(file, ':p:h') }
local client_id
if vim.lsp.start then
  client_id = vim.lsp.start(config)
else
  client_id = vim.lsp.start_client(config)
  vim.lsp.buf_attach_client(buf, client_id)
end
if not client_id then
  finish({ 'the client did not start' }, 1)
  return
end

local seen = vim.wait(60000, function() return #vim.diagnostic.get(buf) > 0 end, 50)
if not seen then
  finish({ 'no diagnostic within 60 s' }, 1)
  return
end

local lines = {}
for _, d in ipairs(vim.diagnostic.get(buf)) do
  local code = d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code) or '?'
  -- 1-based line and column, as `nnc check` prints them.
  table.insert(lines, string.format('diagnostic %s %d:%d %s', code, d.lnum + 1, d.col + 1,
    vim.split(d.message, '\n')[1]))
end

-- Hover on the `x` of `x @ w` (line 8, column 5).
local params = {
  textDocument = { uri = vim.uri_from_bufnr(buf) },
  position = { line = 7, character = 4 },
}
local answers = vim.lsp.buf_request_sync(buf, 'textDocument/hover', params, 30000) or {}
for _, answer in pairs(answers) do
  if answer.result and answer.result.contents then
    local value = answer.result.contents.value or ''
    table.insert(lines, 'hover ' .. table.concat(vim.split(value, '\n'), ' '))
  end
end
finish(lines, 0)
