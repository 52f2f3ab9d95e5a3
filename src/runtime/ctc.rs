//! CTC decoding for evaluation: per-frame class scores of one example
//! (`frames × classes`, row-major, log-probabilities or logits) in, a label
//! sequence out. Greedy decoding takes the best class of each frame, merges
//! repeats and drops blanks; prefix beam search keeps the `width` most
//! probable label prefixes, summing over the alignments of each. The edit
//! distance between a decoding and the reference gives `label_error_rate`.

use std::collections::HashMap;

/// How `label_error_rate` decodes: the `decode` setting of `eval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    Greedy,
    Beam { width: usize },
}

impl Decoder {
    /// The decoder a validated `decode` setting names (greedy when absent).
    pub fn from_config(config: Option<&crate::check::config::Config>) -> Decoder {
        match config {
            Some(c) if c.name == "beam" => Decoder::Beam {
                width: c.int("width").unwrap_or(8).max(1) as usize,
            },
            _ => Decoder::Greedy,
        }
    }

    pub fn decode(self, scores: &[f64], classes: usize, blank: usize) -> Vec<usize> {
        match self {
            Decoder::Greedy => greedy(scores, classes, blank),
            Decoder::Beam { width } => beam(scores, classes, blank, width),
        }
    }
}

/// The best class of each frame, repeats merged, blanks dropped.
pub fn greedy(scores: &[f64], classes: usize, blank: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut previous = None;
    for frame in scores.chunks(classes) {
        let best = frame
            .iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
            .0;
        if best != blank && previous != Some(best) {
            out.push(best);
        }
        previous = Some(best);
    }
    out
}

/// log(e^a + e^b), exact for -inf operands.
fn log_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        hi
    } else {
        hi + (lo - hi).exp().ln_1p()
    }
}

/// Each frame's scores as log-probabilities (a log-softmax; scores that
/// already are log-probabilities come out the same).
fn log_softmax(frame: &[f64]) -> Vec<f64> {
    let max = frame.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total = frame.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
    frame.iter().map(|v| v - total).collect()
}

/// Prefix beam search: after each frame, the `width` label prefixes with the
/// highest probability summed over their alignments (kept apart by whether
/// the alignment ends in a blank, so `a - a` and `a a` stay different).
pub fn beam(scores: &[f64], classes: usize, blank: usize, width: usize) -> Vec<usize> {
    // prefix -> (log p ending in blank, log p ending in a label)
    let mut beams: Vec<(Vec<usize>, f64, f64)> = vec![(Vec::new(), 0.0, f64::NEG_INFINITY)];
    for frame in scores.chunks(classes) {
        let lp = log_softmax(frame);
        let mut next: Vec<(Vec<usize>, f64, f64)> = Vec::new();
        let mut index: HashMap<Vec<usize>, usize> = HashMap::new();
        let mut slot = |prefix: Vec<usize>, next: &mut Vec<(Vec<usize>, f64, f64)>| -> usize {
            *index.entry(prefix.clone()).or_insert_with(|| {
                next.push((prefix, f64::NEG_INFINITY, f64::NEG_INFINITY));
                next.len() - 1
            })
        };
        for (prefix, pb, pnb) in &beams {
            let total = log_add(*pb, *pnb);
            for (c, &p) in lp.iter().enumerate() {
                if c == blank {
                    let k = slot(prefix.clone(), &mut next);
                    next[k].1 = log_add(next[k].1, total + p);
                    continue;
                }
                let mut longer = prefix.clone();
                longer.push(c);
                let k = slot(longer, &mut next);
                if prefix.last() == Some(&c) {
                    // A repeat extends the prefix only after a blank; without
                    // one it merges into the same label.
                    next[k].2 = log_add(next[k].2, pb + p);
                    let same = slot(prefix.clone(), &mut next);
                    next[same].2 = log_add(next[same].2, pnb + p);
                } else {
                    next[k].2 = log_add(next[k].2, total + p);
                }
            }
        }
        next.sort_by(|a, b| {
            log_add(b.1, b.2)
                .total_cmp(&log_add(a.1, a.2))
                .then_with(|| a.0.cmp(&b.0))
        });
        next.truncate(width.max(1));
        beams = next;
    }
    beams
        .into_iter()
        .next()
        .map(|(prefix, _, _)| prefix)
        .unwrap_or_default()
}

/// Levenshtein distance: insertions, deletions and substitutions.
pub fn edit_distance(a: &[usize], b: &[usize]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(x != y));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// log p(labels) summed over every alignment of `frames` frames, by
    /// enumerating all classes^frames paths.
    fn brute_force(lp: &[f64], classes: usize, blank: usize) -> HashMap<Vec<usize>, f64> {
        let frames = lp.len() / classes;
        let mut out: HashMap<Vec<usize>, f64> = HashMap::new();
        for code in 0..classes.pow(frames as u32) {
            let mut path = Vec::new();
            let mut rest = code;
            let mut logp = 0.0;
            for t in 0..frames {
                let c = rest % classes;
                rest /= classes;
                path.push(c);
                logp += lp[t * classes + c];
            }
            let mut labels = Vec::new();
            let mut previous = None;
            for &c in &path {
                if c != blank && previous != Some(c) {
                    labels.push(c);
                }
                previous = Some(c);
            }
            let entry = out.entry(labels).or_insert(f64::NEG_INFINITY);
            *entry = log_add(*entry, logp);
        }
        out
    }

    #[test]
    fn greedy_merges_repeats_and_drops_blanks() {
        // Frames' best classes: 1 1 0 1 2 2 0 0 -> [1, 1, 2].
        let best = [1, 1, 0, 1, 2, 2, 0, 0];
        let scores: Vec<f64> = best
            .iter()
            .flat_map(|&b| (0..3).map(move |c| if c == b { 0.0 } else { -3.0 }))
            .collect();
        assert_eq!(greedy(&scores, 3, 0), vec![1, 1, 2]);
        assert_eq!(greedy(&scores, 3, 2), vec![1, 0, 1, 0]);
    }

    #[test]
    fn beam_search_finds_the_most_probable_labels_where_greedy_does_not() {
        // Two frames, classes {blank, a}: the best path is blank blank
        // (0.36) but "a" has a-a, a-blank and blank-a: 0.16 + 0.24 + 0.24.
        let p = [[0.6, 0.4], [0.6, 0.4]];
        let lp: Vec<f64> = p.iter().flatten().map(|v: &f64| v.ln()).collect();
        assert_eq!(greedy(&lp, 2, 0), Vec::<usize>::new());
        assert_eq!(beam(&lp, 2, 0, 4), vec![1]);
    }

    #[test]
    fn wide_beams_agree_with_brute_force_on_small_cases() {
        for seed in 0..20u64 {
            let (frames, classes) = (4, 3);
            let raw: Vec<f64> = (0..frames * classes)
                .map(|i| 3.0 * crate::interp::random::normal(seed, 0, 5, i as u64))
                .collect();
            let lp: Vec<f64> = raw.chunks(classes).flat_map(log_softmax).collect();
            let all = brute_force(&lp, classes, 0);
            let best = all
                .iter()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(l, _)| l.clone())
                .unwrap();
            // Wide enough to keep every prefix: exact.
            assert_eq!(beam(&raw, classes, 0, 1000), best, "seed {seed}");
        }
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 2, 3]), 0);
        assert_eq!(edit_distance(&[], &[1, 2]), 2);
        assert_eq!(edit_distance(&[1, 3], &[1, 2, 3]), 1);
        assert_eq!(edit_distance(&[3, 2, 1], &[1, 2, 3]), 2);
        assert_eq!(edit_distance(&[4, 4, 4, 4], &[1]), 4);
    }

    #[test]
    fn decoders_from_settings() {
        assert_eq!(Decoder::from_config(None), Decoder::Greedy);
        let lp = [0.0, -5.0, -5.0, 0.0];
        assert_eq!(Decoder::Beam { width: 2 }.decode(&lp, 2, 0), vec![1]);
        assert_eq!(Decoder::Greedy.decode(&lp, 2, 0), vec![1]);
    }
}
