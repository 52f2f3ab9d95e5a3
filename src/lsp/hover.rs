//! Hover: what the checker knows about the name or expression under the
//! cursor — its dtype and symbolic shape (one line per distinct type when a
//! block is called with several), a block's signature and what the call
//! under the cursor returns, the model's parameter count.

use super::analysis::Analysis;
use super::navigate::any_block;
use crate::check::observe::describe;
use crate::check::types::{Callable, Value};
use crate::diagnostics::Span;
use crate::syntax::ast::BlockDecl;

/// Markdown for the hover at `offset`, and the span it is about.
pub fn hover(analysis: &Analysis, offset: usize) -> Option<(String, Span)> {
    let observed = &analysis.observed;
    let contains = |s: &Span| s.start as usize <= offset && offset <= s.end as usize;
    let best = observed
        .iter()
        .map(|(s, _)| *s)
        .filter(contains)
        .min_by_key(|s| (s.end - s.start, std::cmp::Reverse(s.start)));
    let Some(span) = best else {
        // Nothing evaluated here (a block nothing calls, a broken item):
        // a block's signature is still known.
        let (word, start, end) = analysis.word_at(offset)?;
        let block = any_block(analysis, word)?;
        let span = Span::new(0, start, end);
        return Some((code(&signature(analysis, block)), span));
    };
    let values: Vec<&Value> = observed.iter().filter(|(s, _)| *s == span).map(|(_, v)| v).collect();
    let datasets = &analysis.program.datasets;
    let mut types: Vec<String> = Vec::new();
    for value in &values {
        let text = describe(value, datasets);
        if !types.contains(&text) {
            types.push(text);
        }
    }
    let source = analysis.text.get(span.start as usize..span.end as usize).unwrap_or("");
    let label = if source.len() <= 40 && !source.contains('\n') {
        source.to_string()
    } else {
        "(expression)".to_string()
    };
    let block = values.iter().find_map(|v| match v {
        Value::Fn(Callable::Block(name)) => any_block(analysis, name),
        _ => None,
    });
    let mut out = String::new();
    if let Some(block) = block {
        out.push_str(&code(&signature(analysis, block)));
        // The call this name is the callee of: the smallest larger span
        // starting at the same place.
        let call = observed
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| s.start == span.start && s.end > span.end)
            .min_by_key(|s| s.end);
        if let Some(call) = call {
            let mut results: Vec<String> = Vec::new();
            for (_, v) in observed.iter().filter(|(s, _)| *s == call) {
                let text = describe(v, datasets);
                if !results.contains(&text) {
                    results.push(text);
                }
            }
            out.push_str(&format!("\n\nthis call returns `{}`", results.join("` | `")));
        }
        if analysis
            .program
            .model
            .as_ref()
            .is_some_and(|m| m.name == block.name.name)
        {
            out.push_str(&format!(
                "\n\nthe model: {} parameters in {} tensors",
                analysis.program.param_count(),
                analysis.program.params.len()
            ));
        }
    } else {
        let lines: Vec<String> = types.iter().map(|t| format!("{label}: {t}")).collect();
        out.push_str(&code(&lines.join("\n")));
        if types.len() > 1 {
            out.push_str("\n\none type per call of the enclosing block");
        }
    }
    Some((out, span))
}

fn code(text: &str) -> String {
    format!("```nn\n{text}\n```")
}

/// `block linear(x: f32[..., I], out: int, bias: bool = true) -> f32[..., out]`
pub fn signature(analysis: &Analysis, block: &BlockDecl) -> String {
    let text = analysis.program.sources.text(block.span.file);
    let head = text
        .get(block.span.start as usize..block.body.span.start as usize)
        .unwrap_or("");
    head.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("( ", "(")
        .replace(" )", ")")
}
