/**
 * Tree-sitter grammar of .nn files, for editors (highlighting, folding,
 * selections). grammar/nn.pest is the definition of the language; this
 * follows it rule by rule, and takes its words from grammar/keywords.json
 * (the one list of reserved words, checked against nn.pest by
 * editors/test/consistency.test.js).
 *
 * As in nn.pest, a call's `(` and an index's `[` must be on the line of
 * what they apply to (spaces allowed), so a line starting with `(` or `[`
 * begins a new expression: they are immediate tokens that may start with
 * spaces or tabs but not a newline.
 */

const KW = require('../../grammar/keywords.json');

const PREC = {
  range: 1,
  or: 2,
  and: 3,
  compare: 4,
  add: 5,
  mul: 6,
  unary: 7,
  postfix: 8,
};

const commaSep = (rule) => optional(seq(rule, repeat(seq(',', rule)), optional(',')));
const commaSep1 = (rule) => seq(rule, repeat(seq(',', rule)), optional(','));

module.exports = grammar({
  name: 'nn',

  extras: ($) => [/\s/, $.comment],

  word: ($) => $.identifier,

  rules: {
    source_file: ($) => repeat($._item),

    _item: ($) =>
      choice(
        $.const_declaration,
        $.dim_declaration,
        $.data_declaration,
        $.block_declaration,
        $.loss_declaration,
        $.optimizer_declaration,
        $.section,
      ),

    const_declaration: ($) => seq('const', field('name', $.identifier), '=', field('value', $._expression)),
    dim_declaration: ($) => seq('dim', $.identifier, repeat(seq(',', $.identifier))),
    data_declaration: ($) => seq('data', field('name', $.identifier), '=', field('source', $._expression)),

    block_declaration: ($) =>
      seq(
        field('kind', choice('block', 'model')),
        field('name', $.identifier),
        field('parameters', $.parameters),
        optional(seq('->', field('return_type', $.tensor_type))),
        field('body', $.body),
      ),
    parameters: ($) => seq('(', commaSep($.parameter), ')'),
    parameter: ($) =>
      seq(
        field('name', $.identifier),
        ':',
        field('type', choice($.tensor_type, $.hyper_type)),
        optional(seq('=', field('default', $._expression))),
      ),

    loss_declaration: ($) => seq('loss', field('value', $._expression)),
    optimizer_declaration: ($) => seq('optimizer', field('value', $._expression), optional($.schedule)),
    schedule: ($) => seq('schedule', $._expression, repeat(seq('then', $._expression))),

    section: ($) =>
      seq(field('kind', choice(...KW.sections)), '{', repeat(seq($.setting, optional(','))), '}'),
    setting: ($) => seq(field('name', $._label), ':', field('value', $._expression)),

    // ------------------------------------------------------------- types

    tensor_type: ($) => seq(field('dtype', $.dtype), '[', commaSep(choice($.ellipsis, $._expression)), ']'),
    dtype: (_) => choice(...KW.dtypes),
    hyper_type: (_) => choice(...KW.hyper_types),
    ellipsis: (_) => '...',

    // ------------------------------------------------------ block bodies

    body: ($) => seq('{', repeat(seq($._statement, optional(';'))), field('result', $._expression), optional(';'), '}'),
    _statement: ($) => choice($.param_statement, $.state_statement, $.update_statement, $.let_statement),
    param_statement: ($) =>
      seq('param', field('name', $.identifier), ':', field('type', $.tensor_type), optional(seq('=', field('init', $._expression)))),
    state_statement: ($) =>
      seq('state', field('name', $.identifier), ':', field('type', $.tensor_type), optional(seq('=', field('init', $._expression)))),
    update_statement: ($) => seq('update', field('name', $.identifier), '=', field('value', $._expression)),
    let_statement: ($) => seq(field('name', $.identifier), '=', field('value', $._expression)),

    // ------------------------------------------------------- expressions

    _expression: ($) =>
      choice(
        $.binary_expression,
        $.unary_expression,
        $.call,
        $.index,
        $.field_access,
        $.if_expression,
        $.repeat_expression,
        $.parenthesized,
        $.list,
        $.number,
        $.string,
        $.boolean,
        $.training,
        $.identifier,
      ),

    binary_expression: ($) => {
      const table = [
        [PREC.range, '..'],
        [PREC.or, 'or'],
        [PREC.and, 'and'],
        [PREC.compare, choice('==', '!=', '<', '<=', '>', '>=')],
        [PREC.add, choice('+', '-')],
        [PREC.mul, choice('*', '/', '@')],
      ];
      return choice(
        ...table.map(([p, op]) =>
          prec.left(p, seq(field('left', $._expression), field('operator', op), field('right', $._expression))),
        ),
      );
    },
    unary_expression: ($) => prec(PREC.unary, seq(field('operator', choice('-', 'not')), field('operand', $._expression))),

    call: ($) => prec(PREC.postfix, seq(field('function', $._expression), field('arguments', $.arguments))),
    arguments: ($) => seq(alias($._call_open, '('), commaSep($.argument), ')'),
    _call_open: (_) => token.immediate(prec(1, /[ \t]*\(/)),
    argument: ($) => seq(optional(seq(field('name', $._label), ':')), field('value', $._expression)),
    index: ($) =>
      prec(PREC.postfix, seq(field('value', $._expression), alias($._index_open, '['), commaSep1($._index_item), ']')),
    _index_open: (_) => token.immediate(prec(1, /[ \t]*\[/)),
    _index_item: ($) => choice($.ellipsis, $.slice, $._expression),
    slice: ($) =>
      seq(optional($._expression), ':', optional($._expression), optional(seq(':', optional($._expression)))),
    field_access: ($) => prec(PREC.postfix, seq(field('value', $._expression), '.', field('field', $._label))),

    if_expression: ($) =>
      seq('if', field('condition', $._expression), field('then', $.body), 'else', field('else', choice($.if_expression, $.body))),
    repeat_expression: ($) =>
      seq(
        'repeat',
        field('count', choice($.number, $.identifier, $.parenthesized)),
        field('block', $.identifier),
        field('arguments', $.arguments),
      ),
    parenthesized: ($) => seq('(', $._expression, ')'),
    list: ($) => seq('[', commaSep($._expression), ']'),

    // ------------------------------------------------------------ tokens

    // Setting, argument and field names may be reserved words (`train: 20000`).
    _label: ($) => choice($.identifier, alias(choice(...KW.sections, 'data', 'model', 'block'), $.identifier)),
    identifier: (_) => /[A-Za-z_][A-Za-z0-9_]*/,
    number: (_) => token(choice(/\d+\.\d+([eE][+-]?\d+)?/, /\d+[eE][+-]?\d+/, /\d+/)),
    string: (_) => token(seq('"', repeat(choice(/[^"\\\n]/, /\\["\\nt]/)), '"')),
    boolean: (_) => choice('true', 'false'),
    training: (_) => 'training',
    comment: (_) => token(seq('#', /.*/)),
  },
});
