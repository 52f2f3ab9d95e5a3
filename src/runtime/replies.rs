//! The generated `replies` task for copying: a checked `replies(...)` source
//! in, train and validation splits of (source, target) pairs out, in the
//! layout of the other sequence tasks (`src`, `tgt_in` with BOS first,
//! `tgt_out` ending in EOS, padded). A source introduces one or two people
//! by name and asks something ("hi , this is Kato with Mire . can we get a
//! table ?"); the target is the template reply to that question, which
//! names them again ("a table for Kato and Mire , right away ."; one reply
//! names them in the other order). Names are drawn from `names` made-up
//! names with frequencies falling as 1/rank, so most names are rare: a
//! model can only write a rare name by copying it from the source.
//!
//! Token ids: the template words first ([`WORDS`]), then the names, then
//! PAD, BOS and EOS (`pad = vocab`, as in `copy` or `reverse`, where
//! `vocab` counts words and names). Everything is drawn from the seed, the
//! two splits from different streams.

use super::data::{Data, Split};
use crate::check::data::Dataset;
use crate::interp::random;

/// Introductions of one person (`A`) and of two (`A`, `B`).
const ONE: &[&str] = &[
    "hello , i am A .",
    "hi , my name is A .",
    "this is A speaking .",
    "good morning , A here .",
];
const TWO: &[&str] = &[
    "hello , we are A and B .",
    "hi , this is A with B .",
    "my name is A and my friend is B .",
    "good evening , A and B here .",
];
/// Questions and their replies; `N` stands for the names ("A" or "A and
/// B"), `R` for the names in the other order ("A" or "B and A").
const TOPICS: &[(&str, &str)] = &[
    ("can we get a table ?", "a table for N , right away ."),
    ("is my room ready ?", "yes R , your room is ready ."),
    ("i would like to pay .", "thank you N , here is the bill ."),
    ("where is the station ?", "N , the station is to the north ."),
];

/// The template words, in id order (every word of the templates above).
pub const WORDS: &[&str] = &[
    ",", ".", "?", "hello", "hi", "i", "am", "my", "name", "is", "this", "speaking", "good", "morning", "here", "we",
    "are", "and", "with", "friend", "evening", "can", "get", "a", "table", "room", "ready", "would", "like", "to",
    "pay", "where", "the", "station", "for", "right", "away", "yes", "your", "thank", "you", "bill", "north",
];

const DRAW_STREAM: u64 = 50;

/// Words of the longest source and the longest target (without EOS).
/// `check::data::REPLY_SOURCE` and `REPLY_TARGET` must be these.
pub fn max_lengths() -> (usize, usize) {
    let words = |t: &str| t.split_whitespace().count();
    let intro = TWO.iter().chain(ONE).map(|t| words(t)).max().unwrap_or(0);
    let question = TOPICS.iter().map(|(q, _)| words(q)).max().unwrap_or(0);
    // "N" becomes up to three words.
    let reply = TOPICS.iter().map(|(_, r)| words(r) + 2).max().unwrap_or(0);
    (intro + question, reply)
}

/// A made-up name for name number `index`: two or three syllables,
/// capitalized (so no name is also a template word).
pub fn name(index: usize) -> String {
    const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
    const VOWELS: &[u8] = b"aeiou";
    let syllables = CONSONANTS.len() * VOWELS.len();
    let mut rest = index;
    let mut out = String::new();
    for k in 0..3 {
        let s = rest % syllables;
        let consonant = CONSONANTS[s / VOWELS.len()] as char;
        out.push(if k == 0 {
            consonant.to_ascii_uppercase()
        } else {
            consonant
        });
        out.push(VOWELS[s % VOWELS.len()] as char);
        rest /= syllables;
        if rest == 0 && k >= 1 {
            break;
        }
    }
    out
}

/// Settings of the task, read from the validated source.
#[derive(Clone, Copy, Debug)]
pub struct Replies {
    pub names: usize,
    pub seed: u64,
}

/// One example as token ids: source and target (without BOS or EOS).
pub type Pair = (Vec<usize>, Vec<usize>);

impl Replies {
    pub fn from_dataset(dataset: &Dataset) -> Replies {
        let source = &dataset.source;
        Replies {
            names: source.int("names").unwrap_or(1000) as usize,
            seed: source.int("seed").unwrap_or(0) as u64,
        }
    }

    /// Words and names: the ids before PAD.
    pub fn vocab(&self) -> usize {
        WORDS.len() + self.names
    }

    /// Example `index` of split `split` (0 train, 1 validation).
    pub fn pair(&self, split: u64, index: u64) -> Pair {
        let mut draws = 0u64;
        let mut draw = || {
            draws += 1;
            random::bits(self.seed, index, DRAW_STREAM + split, draws)
        };
        let people = 1 + (draw() % 2) as usize;
        let intros = if people == 1 { ONE } else { TWO };
        let intro = intros[(draw() % intros.len() as u64) as usize];
        let (question, reply) = TOPICS[(draw() % TOPICS.len() as u64) as usize];
        let a = self.zipf_name(draw());
        let mut b = self.zipf_name(draw());
        if b == a {
            b = (a + 1) % self.names;
        }
        let name_id = |n: usize| WORDS.len() + n;
        let word_id = |w: &str| WORDS.iter().position(|x| *x == w).expect("a template word");
        let mut src = Vec::new();
        for word in intro.split_whitespace().chain(question.split_whitespace()) {
            match word {
                "A" => src.push(name_id(a)),
                "B" => src.push(name_id(b)),
                w => src.push(word_id(w)),
            }
        }
        let mut tgt = Vec::new();
        for word in reply.split_whitespace() {
            let names: Vec<usize> = match (word, people) {
                ("N" | "R", 1) => vec![a],
                ("N", _) => vec![a, b],
                ("R", _) => vec![b, a],
                _ => {
                    tgt.push(word_id(word));
                    continue;
                }
            };
            for (k, &n) in names.iter().enumerate() {
                if k > 0 {
                    tgt.push(word_id("and"));
                }
                tgt.push(name_id(n));
            }
        }
        (src, tgt)
    }

    /// A name number with probability falling as 1/rank.
    fn zipf_name(&self, bits: u64) -> usize {
        let total: f64 = (1..=self.names).map(|r| 1.0 / r as f64).sum();
        let mut u = (bits >> 11) as f64 / (1u64 << 53) as f64 * total;
        for r in 0..self.names {
            let w = 1.0 / (r + 1) as f64;
            if u < w {
                return r;
            }
            u -= w;
        }
        self.names - 1
    }

    /// `count` examples of split `split` as a table.
    fn table(&self, split: u64, count: usize) -> Split {
        let (src_len, tgt_words) = max_lengths();
        let tgt_len = tgt_words + 1;
        let pad = self.vocab() as f64;
        let (bos, eos) = (pad + 1.0, pad + 2.0);
        let mut src = vec![pad; count * src_len];
        let mut tgt_in = vec![pad; count * tgt_len];
        let mut tgt_out = vec![pad; count * tgt_len];
        for e in 0..count {
            let (s, t) = self.pair(split, e as u64);
            for (i, &id) in s.iter().enumerate() {
                src[e * src_len + i] = id as f64;
            }
            let row = e * tgt_len;
            tgt_in[row] = bos;
            for (i, &id) in t.iter().enumerate() {
                tgt_in[row + i + 1] = id as f64;
                tgt_out[row + i] = id as f64;
            }
            tgt_out[row + t.len()] = eos;
        }
        Split::table(
            count,
            [
                ("src", vec![count, src_len], src),
                ("tgt_in", vec![count, tgt_len], tgt_in),
                ("tgt_out", vec![count, tgt_len], tgt_out),
            ],
        )
    }
}

/// Fills the splits of a `replies` dataset, and its word list (words,
/// names, then `<pad>`, `<bos>`, `<eos>`).
pub fn synthesize(dataset: &Dataset, data: &mut Data) {
    let task = Replies::from_dataset(dataset);
    let source = &dataset.source;
    data.train = task.table(0, source.int("train").unwrap_or(8000) as usize);
    data.val = task.table(1, source.int("val").unwrap_or(500) as usize);
    data.words = WORDS.iter().map(|w| w.to_string()).collect();
    data.words.extend((0..task.names).map(name));
    data.words.extend(["<pad>", "<bos>", "<eos>"].map(String::from));
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::check::data::{REPLY_SOURCE, REPLY_TARGET};

    fn task() -> Replies {
        Replies { names: 1000, seed: 3 }
    }

    fn text(ids: &[usize]) -> String {
        ids.iter()
            .map(|&i| WORDS.get(i).map_or_else(|| name(i - WORDS.len()), |w| w.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn the_longest_pair_is_the_checked_length() {
        assert_eq!(max_lengths(), (REPLY_SOURCE as usize, REPLY_TARGET as usize - 1));
        let task = task();
        let pairs: Vec<Pair> = (0..2000).map(|i| task.pair(0, i)).collect();
        assert_eq!(pairs.iter().map(|p| p.0.len()).max(), Some(max_lengths().0));
        assert_eq!(pairs.iter().map(|p| p.1.len()).max(), Some(max_lengths().1));
    }

    #[test]
    fn every_template_word_is_in_the_word_list_once() {
        let listed: HashSet<&str> = WORDS.iter().copied().collect();
        assert_eq!(listed.len(), WORDS.len());
        let templates = ONE.iter().chain(TWO).chain(TOPICS.iter().flat_map(|(q, r)| [q, r]));
        for word in templates.flat_map(|t| t.split_whitespace()) {
            assert!(matches!(word, "A" | "B" | "N" | "R") || listed.contains(word), "{word}");
        }
    }

    #[test]
    fn replies_repeat_the_source_names() {
        let task = task();
        let (src, tgt) = task.pair(1, 0);
        let names = |ids: &[usize]| -> Vec<usize> { ids.iter().copied().filter(|&i| i >= WORDS.len()).collect() };
        for index in 0..300 {
            let (src, tgt) = task.pair(1, index);
            let mut from: Vec<usize> = names(&src);
            let mut to: Vec<usize> = names(&tgt);
            assert!(!from.is_empty() && from.len() <= 2, "{}", text(&src));
            from.sort_unstable();
            to.sort_unstable();
            assert_eq!(from, to, "{} -> {}", text(&src), text(&tgt));
            assert!(src.iter().chain(&tgt).all(|&i| i < task.vocab()));
        }
        // One example written out, as a check on the templates.
        assert!(text(&src).ends_with(['?', '.']), "{}", text(&src));
        assert!(text(&tgt).ends_with('.'), "{}", text(&tgt));
    }

    #[test]
    fn most_names_are_rare_and_pairs_are_seeded() {
        let task = task();
        let mut counts = vec![0usize; task.names];
        for index in 0..8000 {
            for id in task.pair(0, index).0 {
                if id >= WORDS.len() {
                    counts[id - WORDS.len()] += 1;
                }
            }
        }
        // The most frequent name is common; about half the names are seen
        // at most three times in 8,000 examples (496 of 1,000 at seed 3).
        assert!(counts[0] > 500, "{}", counts[0]);
        let rare = counts.iter().filter(|&&c| c <= 3).count();
        assert!(rare > task.names * 2 / 5, "{rare}");
        assert_eq!(task.pair(0, 7), task.pair(0, 7));
        assert!((0..20).any(|i| task.pair(0, i) != task.pair(1, i)));
        assert!((0..20).any(|i| task.pair(0, i) != Replies { seed: 4, ..task }.pair(0, i)));
    }

    #[test]
    fn names_are_distinct_words() {
        let all: HashSet<String> = (0..2000).map(name).collect();
        assert_eq!(all.len(), 2000);
        assert!(all.iter().all(|n| !WORDS.contains(&n.as_str())));
    }
}
