//! A CSV column of text as token ids (`csv(..., text: "passage")`): the
//! column's cells in, a table of ids `[rows, length]` and the vocabulary
//! out. Text is cut into characters (`tokens: chars`, the default) or runs
//! of non-whitespace (`tokens: words`). Id 0 pads, id 1 is "other" (every
//! token outside the vocabulary), then come the `vocab - 2` tokens most
//! frequent in the training rows (ties in the order of the tokens). A text
//! longer than `length` tokens is cut to its first `length`; a shorter one is
//! padded at the start, so its last token is at the last position, where a
//! many-to-one RNN reads its state.

use std::collections::HashMap;

/// The pad id.
pub const PAD: usize = 0;
/// The id of every token outside the vocabulary.
pub const OTHER: usize = 1;

/// Token ids of every row, row-major `[rows, length]`, and the token of each
/// id (`<pad>` and `<other>` first).
#[derive(Debug, PartialEq)]
pub struct Encoded {
    pub ids: Vec<f64>,
    pub tokens: Vec<String>,
}

/// The tokens of one text.
pub fn tokenize(text: &str, words: bool) -> Vec<String> {
    if words {
        text.split_whitespace().map(str::to_string).collect()
    } else {
        text.chars().map(String::from).collect()
    }
}

/// Encodes `texts` (one per row) with a vocabulary counted over
/// `train_rows`.
pub fn encode(texts: &[&str], train_rows: &[usize], words: bool, length: usize, vocab: usize) -> Encoded {
    let tokenized: Vec<Vec<String>> = texts.iter().map(|t| tokenize(t, words)).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for &row in train_rows {
        for token in &tokenized[row] {
            *counts.entry(token).or_insert(0) += 1;
        }
    }
    let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut tokens = vec!["<pad>".to_string(), "<other>".to_string()];
    tokens.extend(ranked.iter().take(vocab.saturating_sub(2)).map(|(t, _)| t.to_string()));
    let index: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .skip(2)
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut ids = vec![PAD as f64; texts.len() * length];
    for (row, text) in tokenized.iter().enumerate() {
        let kept = &text[..text.len().min(length)];
        let start = row * length + (length - kept.len());
        for (k, token) in kept.iter().enumerate() {
            ids[start + k] = *index.get(token.as_str()).unwrap_or(&OTHER) as f64;
        }
    }
    Encoded { ids, tokens }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_are_padded_at_the_start_and_cut_at_the_end() {
        // Training rows 0 and 1: "a" 3 times, "b" twice, "c" once.
        let encoded = encode(&["aab", "abc", "zzzz"], &[0, 1], false, 3, 4);
        assert_eq!(encoded.tokens, ["<pad>", "<other>", "a", "b"]);
        assert_eq!(
            encoded.ids,
            [2.0, 2.0, 3.0, /* abc: c is other */ 2.0, 3.0, 1.0, /* zzz, cut */ 1.0, 1.0, 1.0]
        );
        let short = encode(&["ab"], &[0], false, 4, 10);
        assert_eq!(short.ids, [0.0, 0.0, 2.0, 3.0]);
    }

    #[test]
    fn words_split_at_whitespace() {
        let encoded = encode(&["to be  or\tnot to be", "be"], &[0], true, 4, 4);
        assert_eq!(encoded.tokens, ["<pad>", "<other>", "be", "to"]);
        // "to be or not" (cut to 4): or and not are other.
        assert_eq!(&encoded.ids[..4], &[3.0, 2.0, 1.0, 1.0]);
        assert_eq!(&encoded.ids[4..], &[0.0, 0.0, 0.0, 2.0]);
    }
}
