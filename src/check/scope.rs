//! Lexical scopes of the checker: what each name means where it is used.

use std::collections::HashMap;

use super::types::Value;
use crate::diagnostics::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    /// `x = expr`
    Let,
    /// A tensor input of a block.
    Input,
    /// A hyper-parameter of a block (`heads: int = 4`).
    Hyper,
    /// A size named in a signature (`B` in `f32[B, D]`), bound by unification.
    ShapeVar,
    Param,
    State,
}

#[derive(Clone, Debug)]
pub struct Binding {
    pub value: Value,
    /// Where the name was introduced.
    pub span: Span,
    pub kind: BindingKind,
}

/// Nested name tables: one per block body, one more per `if` branch.
#[derive(Default)]
pub struct Scope {
    layers: Vec<HashMap<String, Binding>>,
}

impl Scope {
    pub fn new() -> Scope {
        Scope {
            layers: vec![HashMap::new()],
        }
    }

    pub fn push(&mut self) {
        self.layers.push(HashMap::new());
    }

    pub fn pop(&mut self) {
        self.layers.pop();
    }

    pub fn bind(&mut self, name: &str, binding: Binding) {
        self.layers
            .last_mut()
            .expect("a scope has at least one layer")
            .insert(name.to_string(), binding);
    }

    pub fn get(&self, name: &str) -> Option<&Binding> {
        self.layers.iter().rev().find_map(|layer| layer.get(name))
    }

    /// Every visible name, for "did you mean" suggestions.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.layers.iter().flat_map(|layer| layer.keys().map(String::as_str))
    }
}

/// The closest candidate to `name` by edit distance, if close enough to be a
/// plausible typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let distance = edit_distance(name, candidate);
        let limit = (name.len().max(candidate.len()) / 3).max(1);
        if distance <= limit && best.is_none_or(|(d, c)| distance < d || (distance == d && candidate < c)) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let substitution = previous[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            current[j] = substitution.min(previous[j] + 1).min(current[j - 1] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(suggest("lienar", ["linear", "lstm"]), Some("linear"));
        assert_eq!(suggest("relu", ["gelu", "relu"]), Some("gelu"));
        assert_eq!(suggest("xyz", ["linear", "lstm"]), None);
    }
}
