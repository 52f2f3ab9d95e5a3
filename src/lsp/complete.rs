//! Completion from the text before the cursor (which usually does not parse
//! yet) and the last analysis: inside a call, the callee's parameters not
//! given yet (blocks, builtins, data sources, optimizers, schedules,
//! generation methods); inside a section, its settings; in `metrics: [`,
//! the metric names; after `optimizer`/`schedule`/`then`, their names;
//! otherwise the names in scope (the block's own, the file's, blocks of
//! the file and the library, builtins).

use lsp_types::{CompletionItem, CompletionItemKind, InsertTextFormat};

use super::analysis::Analysis;
use super::hover::signature;
use super::navigate::{any_block, block_bindings, enclosing_block};
use crate::check::config::Schema;
use crate::check::schemas;
use crate::syntax::ast::{Item, TypeExpr};

pub fn complete(analysis: &Analysis, offset: usize) -> Vec<CompletionItem> {
    let text = &analysis.text;
    let offset = offset.min(text.len());
    let chunk_start = crate::syntax::item_chunks(text)
        .into_iter()
        .map(|(s, _)| s)
        .filter(|&s| s <= offset)
        .max()
        .unwrap_or(0);
    let Some(before) = text.get(chunk_start..offset) else {
        return Vec::new();
    };
    let item_keyword: String = before
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let (open, inside) = innermost_open(before);
    let partial_start = before.len()
        - before
            .bytes()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
    let prefix_text = before[..partial_start].trim_end();
    let mut items = Vec::new();
    match open {
        Some(('(', at)) => {
            let callee = word_before(&before[..at]);
            let args = &before[at + 1..partial_start];
            let (positional, named) = given_args(args);
            let typing_name = args_tail_is_name_position(args);
            if let Some(callee) = callee {
                if typing_name {
                    items.extend(parameters(analysis, callee, &item_keyword, positional, &named));
                }
            }
            items.extend(names(analysis, offset));
        }
        Some(('{', _)) if inside.is_empty() && is_section(&item_keyword) => {
            let given = given_args(&before[before.find('{').map_or(0, |i| i + 1)..partial_start]).1;
            if let Some(schema) = schemas::SECTIONS.iter().find(|s| s.name == item_keyword) {
                items.extend(schema_items(schema, &given));
            }
            if item_keyword == "sweep" {
                let axes = [
                    ("optimizer", "optimizers to compare", "optimizer: [$0]"),
                    (
                        "schedule",
                        "schedules to compare (a list for a chain)",
                        "schedule: [$0]",
                    ),
                    (
                        "rank_by",
                        "the validation metric that ranks the variants",
                        "rank_by: $0",
                    ),
                ];
                for (name, detail, snippet) in axes {
                    if !given.iter().any(|g| g.as_str() == name) {
                        items.push(item(name, CompletionItemKind::PROPERTY, detail, snippet.to_string()));
                    }
                }
                for (name, _) in &analysis.program.constants {
                    items.push(item(
                        name,
                        CompletionItemKind::CONSTANT,
                        "a constant to sweep",
                        format!("{name}: [$0]"),
                    ));
                }
            }
        }
        Some(('[', at)) if item_keyword == "sweep" && before[..at].trim_end().ends_with("optimizer:") => {
            items.extend(callable_schemas(schemas::OPTIMIZERS));
        }
        Some(('[', at)) if item_keyword == "sweep" && before[..at].trim_end().ends_with("schedule:") => {
            items.extend(callable_schemas(schemas::SCHEDULES));
        }
        Some(('[', _)) if prefix_text.ends_with("metrics: [") || metrics_list(before) => {
            for metric in schemas::METRICS {
                items.push(item(
                    metric,
                    CompletionItemKind::ENUM_MEMBER,
                    "metric",
                    metric.to_string(),
                ));
            }
        }
        _ if item_keyword == "optimizer" && (prefix_text == "optimizer") => {
            items.extend(callable_schemas(schemas::OPTIMIZERS));
        }
        _ if item_keyword == "optimizer" && (prefix_text.ends_with("schedule") || prefix_text.ends_with("then")) => {
            items.extend(callable_schemas(schemas::SCHEDULES));
        }
        _ => items.extend(names(analysis, offset)),
    }
    items
}

fn is_section(word: &str) -> bool {
    matches!(word, "train" | "eval" | "generate" | "sweep" | "analyze")
}

fn metrics_list(before: &str) -> bool {
    let Some(open) = before.rfind('[') else { return false };
    before[..open].trim_end().ends_with("metrics:")
}

/// The innermost bracket open at the end of `text` (skipping strings and
/// comments) with its offset, and the text after it.
fn innermost_open(text: &str) -> (Option<(char, usize)>, &str) {
    let mut stack: Vec<(char, usize)> = Vec::new();
    let (mut in_string, mut in_comment) = (false, false);
    for (i, c) in text.char_indices() {
        if in_comment {
            in_comment = c != '\n';
        } else if in_string {
            in_string = c != '"' && c != '\n';
        } else {
            match c {
                '#' => in_comment = true,
                '"' => in_string = true,
                '(' | '[' | '{' => stack.push((c, i)),
                ')' | ']' | '}' => {
                    stack.pop();
                }
                _ => {}
            }
        }
    }
    match stack.last() {
        Some(&(c, at)) => (Some((c, at)), text[at + 1..].trim()),
        None => (None, ""),
    }
}

fn word_before(text: &str) -> Option<&str> {
    let text = text.trim_end_matches([' ', '\t']);
    let start = text.len()
        - text
            .bytes()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
    let word = &text[start..];
    (!word.is_empty() && !word.as_bytes()[0].is_ascii_digit()).then_some(word)
}

/// Splits the arguments before the cursor at top-level commas: how many
/// positional ones are complete, and the names given.
fn given_args(args: &str) -> (usize, Vec<String>) {
    let mut parts = Vec::new();
    let (mut depth, mut start, mut in_string) = (0i32, 0, false);
    for (i, c) in args.char_indices() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&args[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    let mut positional = 0;
    let mut named = Vec::new();
    for part in parts {
        let part = part.trim();
        match part.split_once(':') {
            Some((name, _))
                if !name.trim().is_empty() && name.trim().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                named.push(name.trim().to_string())
            }
            _ if !part.is_empty() => positional += 1,
            _ => {}
        }
    }
    (positional, named)
}

/// Whether the cursor is where an argument starts (after `(` or `,`, and
/// perhaps a partial name), so a parameter name fits.
fn args_tail_is_name_position(args: &str) -> bool {
    let trimmed = args.trim_end();
    trimmed.is_empty() || trimmed.ends_with(',')
}

/// The parameters of `callee` not given yet, as `name: ` items.
fn parameters(
    analysis: &Analysis,
    callee: &str,
    item_keyword: &str,
    positional: usize,
    named: &[String],
) -> Vec<CompletionItem> {
    let mut out = Vec::new();
    if let Some(block) = any_block(analysis, callee) {
        let doc = signature(analysis, block);
        let source = analysis.program.sources.text(block.span.file);
        for (i, param) in block.params.iter().enumerate() {
            if i < positional || named.contains(&param.name.name) {
                continue;
            }
            let ty = match &param.ty {
                TypeExpr::Tensor(t) => source
                    .get(t.span.start as usize..t.span.end as usize)
                    .unwrap_or("")
                    .to_string(),
                TypeExpr::Hyper(h, _) => h.name().to_string(),
            };
            let default = param
                .default
                .as_ref()
                .and_then(|d| source.get(d.span.start as usize..d.span.end as usize))
                .map(|d| format!(" = {d}"))
                .unwrap_or_default();
            let mut entry = item(
                &param.name.name,
                CompletionItemKind::FIELD,
                &format!("{ty}{default}"),
                format!("{}: $0", param.name.name),
            );
            entry.documentation = Some(lsp_types::Documentation::String(doc.clone()));
            entry.sort_text = Some(format!("0{i:02}"));
            entry.preselect = Some(i == positional);
            out.push(entry);
        }
        return out;
    }
    let lists: [&[Schema]; 5] = [
        if item_keyword == "data" {
            schemas::DATA_SOURCES
        } else {
            &[]
        },
        schemas::OPTIMIZERS,
        schemas::SCHEDULES,
        schemas::METHODS,
        schemas::EIGENVALUES,
    ];
    if let Some(schema) = lists.iter().flat_map(|l| l.iter()).find(|s| s.name == callee) {
        let mut items = schema_items(schema, named);
        for (i, entry) in items.iter_mut().enumerate() {
            entry.sort_text = Some(format!("0{i:02}"));
        }
        return items;
    }
    if let Some(params) = crate::check::builtins::signature(callee) {
        for (i, (name, _, required)) in params.iter().enumerate() {
            if i < positional || named.iter().any(|n| n == name) {
                continue;
            }
            let detail = if *required { "required" } else { "optional" };
            let mut entry = item(name, CompletionItemKind::FIELD, detail, format!("{name}: $0"));
            entry.sort_text = Some(format!("0{i:02}"));
            out.push(entry);
        }
    }
    out
}

fn schema_items(schema: &Schema, given: &[String]) -> Vec<CompletionItem> {
    schema
        .params
        .iter()
        .filter(|p| !given.iter().any(|g| g == p.name))
        .map(|p| item(p.name, CompletionItemKind::PROPERTY, p.doc, format!("{}: $0", p.name)))
        .collect()
}

fn callable_schemas(list: &[Schema]) -> Vec<CompletionItem> {
    list.iter()
        .map(|s| item(s.name, CompletionItemKind::FUNCTION, s.doc, format!("{}($0)", s.name)))
        .collect()
}

/// Names visible at `offset`.
fn names(analysis: &Analysis, offset: usize) -> Vec<CompletionItem> {
    let mut out: Vec<CompletionItem> = Vec::new();
    let push = |entry: CompletionItem, out: &mut Vec<CompletionItem>| {
        if !out.iter().any(|e| e.label == entry.label) {
            out.push(entry);
        }
    };
    let file = analysis.user_file();
    if let Some(block) = enclosing_block(file, offset) {
        for (name, span) in block_bindings(block) {
            if (span.start as usize) < offset {
                push(
                    item(name, CompletionItemKind::VARIABLE, "local", name.to_string()),
                    &mut out,
                );
            }
        }
    } else {
        // The item under the cursor may not parse yet: its `name =` lines.
        for name in assigned_names(&analysis.text[..offset.min(analysis.text.len())]) {
            push(
                item(name, CompletionItemKind::VARIABLE, "local", name.to_string()),
                &mut out,
            );
        }
    }
    for item_decl in &file.items {
        match item_decl {
            Item::Const(d) => {
                let value = analysis
                    .text
                    .get(d.value.span.start as usize..d.value.span.end as usize)
                    .unwrap_or("");
                push(
                    item(
                        &d.name.name,
                        CompletionItemKind::CONSTANT,
                        &format!("const = {value}"),
                        d.name.name.clone(),
                    ),
                    &mut out,
                );
            }
            Item::Dim(d) => {
                for n in &d.names {
                    push(
                        item(&n.name, CompletionItemKind::TYPE_PARAMETER, "dim", n.name.clone()),
                        &mut out,
                    );
                }
            }
            Item::Data(d) => push(
                item(&d.name.name, CompletionItemKind::VARIABLE, "data", d.name.name.clone()),
                &mut out,
            ),
            _ => {}
        }
    }
    for file in &analysis.program.files {
        for decl in &file.items {
            if let Item::Block(b) = decl {
                let detail = signature(analysis, b);
                push(
                    item(
                        &b.name.name,
                        CompletionItemKind::FUNCTION,
                        &detail,
                        format!("{}($0)", b.name.name),
                    ),
                    &mut out,
                );
            }
        }
    }
    for name in crate::check::builtins::names() {
        push(
            item(name, CompletionItemKind::FUNCTION, "builtin", format!("{name}($0)")),
            &mut out,
        );
    }
    for name in ["xavier", "kaiming", "normal", "uniform", "zeros", "ones", "training"] {
        push(item(name, CompletionItemKind::KEYWORD, "", name.to_string()), &mut out);
    }
    out
}

/// Names assigned at the start of a line of the last item of `text`.
fn assigned_names(text: &str) -> Vec<&str> {
    let start = crate::syntax::item_chunks(text).last().map_or(0, |c| c.0);
    let mut out = Vec::new();
    if !(text[start..].starts_with("block") || text[start..].starts_with("model")) {
        return out;
    }
    for line in text[start..].lines() {
        let line = line.trim_start();
        let line = line
            .strip_prefix("param ")
            .or_else(|| line.strip_prefix("state "))
            .unwrap_or(line);
        let end = line
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let rest = line[end..].trim_start();
        if end > 0 && ((rest.starts_with('=') && !rest.starts_with("==")) || rest.starts_with(':')) {
            out.push(&line[..end]);
        }
    }
    out
}

fn item(label: &str, kind: CompletionItemKind, detail: &str, snippet: String) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: (!detail.is_empty()).then(|| detail.to_string()),
        insert_text: Some(snippet),
        insert_text_format: Some(InsertTextFormat::SNIPPET),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_arguments_before_the_cursor() {
        assert_eq!(given_args("x, bias: f(a, b), "), (1, vec!["bias".to_string()]));
        assert_eq!(innermost_open("y = linear(x, [1, 2], ").0, Some(('(', 10)));
        assert_eq!(word_before("y = linear"), Some("linear"));
        assert_eq!(
            assigned_names("block f(x: f32[B]) {\n  h = x\n  param w: f32[3]\n  h == 1\n"),
            ["h", "w"]
        );
    }
}
