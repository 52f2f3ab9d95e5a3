; Highlighting of .nn files. The keywords are those of grammar/keywords.json
; (editors/test/consistency.test.js checks it).

(comment) @comment
(string) @string
(number) @number
(boolean) @constant.builtin
(training) @constant.builtin
(dtype) @type.builtin
(hyper_type) @type.builtin
(ellipsis) @punctuation.special

[
  "const"
  "dim"
  "data"
  "block"
  "model"
  "loss"
  "optimizer"
  "schedule"
  "param"
  "state"
  "update"
  "train"
  "eval"
  "generate"
  "sweep"
  "analyze"
] @keyword

[
  "if"
  "else"
] @keyword.conditional

[
  "repeat"
  "then"
] @keyword.repeat

[
  "and"
  "or"
  "not"
] @keyword.operator

[
  "=" "->" ".." "==" "!=" "<" "<=" ">" ">=" "+" "-" "*" "/" "@"
] @operator

["(" ")" "[" "]" "{" "}"] @punctuation.bracket
["," ":" ";" "."] @punctuation.delimiter

(block_declaration name: (identifier) @function)
(call function: (identifier) @function.call)
(repeat_expression block: (identifier) @function.call)
(parameter name: (identifier) @variable.parameter)
(setting name: (identifier) @property)
(argument name: (identifier) @property)
(field_access field: (identifier) @property)
(const_declaration name: (identifier) @constant)
((identifier) @constant
  (#match? @constant "^[A-Z][A-Z0-9_]*$"))
