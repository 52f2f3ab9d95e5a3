//! The synthetic `speech` task for CTC: a checked `speech(...)` source in,
//! train and validation splits out. Each example is a label sequence
//! (symbols `1..=vocab`; 0 is the CTC blank and pads the labels) read out as
//! frames: every symbol becomes `duration` frames of its own prototype
//! vector plus Gaussian noise, and a silence gap (noise alone) comes before
//! a symbol with probability `silence` (always between two equal symbols,
//! so repeats stay audible) and at the end. Frames after an example's end
//! are zeros. Everything is drawn from the seed: prototypes are shared by
//! both splits, examples are drawn per split.

use super::data::{Data, Split};
use crate::check::data::{speech_frames, Dataset};
use crate::interp::random;

/// Random streams: discrete draws and noise per split, and the prototypes.
const DRAW_STREAM: u64 = 10;
const NOISE_STREAM: u64 = 20;
const PROTOTYPE_STREAM: u64 = 30;

/// Settings of the task, read from the validated source.
#[derive(Clone, Copy, Debug)]
pub struct Speech {
    pub vocab: usize,
    pub len: (usize, usize),
    pub duration: (usize, usize),
    pub silence: f64,
    pub noise: f64,
    pub features: usize,
    pub seed: u64,
}

/// One example: its frames (`length × features`, row-major) and labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub frames: Vec<f64>,
    pub length: usize,
    pub labels: Vec<usize>,
}

impl Speech {
    pub fn from_dataset(dataset: &Dataset) -> Speech {
        let source = &dataset.source;
        let range = |key: &str| {
            let (low, high) = source.range(key).unwrap_or((1, 1));
            (low as usize, high as usize)
        };
        Speech {
            vocab: source.int("vocab").unwrap_or(10) as usize,
            len: range("len"),
            duration: range("duration"),
            silence: source.float("silence").unwrap_or(0.3),
            noise: source.float("noise").unwrap_or(0.5),
            features: source.int("features").unwrap_or(16) as usize,
            seed: source.int("seed").unwrap_or(0) as u64,
        }
    }

    /// Frames per example (the longest possible reading).
    pub fn frames(&self) -> usize {
        speech_frames(self.len.1 as i64, self.duration.1 as i64) as usize
    }

    /// Example `index` of split `split` (0 train, 1 validation).
    pub fn example(&self, split: u64, index: u64) -> Example {
        let draw = |k: u64| random::bits(self.seed, index, DRAW_STREAM + split, k);
        let pick = |k: u64, (low, high): (usize, usize)| low + (draw(k) % (high - low + 1) as u64) as usize;
        let chance = |k: u64| (draw(k) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let len = pick(0, self.len);
        let labels: Vec<usize> = (0..len as u64)
            .map(|i| 1 + (draw(1 + i) % self.vocab as u64) as usize)
            .collect();
        // Which frames hold which symbol (0 for silence).
        let mut spoken: Vec<usize> = Vec::with_capacity(self.frames());
        for (i, &symbol) in labels.iter().enumerate() {
            let i = i as u64;
            let repeat = i > 0 && labels[i as usize - 1] == symbol;
            if repeat || chance(1000 + i) < self.silence {
                spoken.extend(std::iter::repeat_n(0, pick(2000 + i, self.duration)));
            }
            spoken.extend(std::iter::repeat_n(symbol, pick(3000 + i, self.duration)));
        }
        if chance(1000 + len as u64) < self.silence {
            spoken.extend(std::iter::repeat_n(0, pick(2000 + len as u64, self.duration)));
        }
        let f = self.features;
        let mut frames = Vec::with_capacity(spoken.len() * f);
        for (t, &symbol) in spoken.iter().enumerate() {
            for k in 0..f {
                let noise = self.noise * random::normal(self.seed, index, NOISE_STREAM + split, (t * f + k) as u64);
                frames.push(self.prototype(symbol, k) + noise);
            }
        }
        Example {
            frames,
            length: spoken.len(),
            labels,
        }
    }

    /// Value `k` of the prototype frame of `symbol` (silence is all zeros).
    fn prototype(&self, symbol: usize, k: usize) -> f64 {
        if symbol == 0 {
            return 0.0;
        }
        random::normal(self.seed, 0, PROTOTYPE_STREAM, (symbol * self.features + k) as u64)
    }

    /// `count` examples of split `split` as a table.
    fn split(&self, split: u64, count: usize) -> Split {
        let (frames, f, max_len) = (self.frames(), self.features, self.len.1);
        let mut x = vec![0.0; count * frames * f];
        let mut input_lengths = Vec::with_capacity(count);
        let mut labels = vec![0.0; count * max_len];
        let mut label_lengths = Vec::with_capacity(count);
        for e in 0..count {
            let example = self.example(split, e as u64);
            let start = e * frames * f;
            x[start..start + example.frames.len()].copy_from_slice(&example.frames);
            input_lengths.push(example.length as f64);
            for (i, &label) in example.labels.iter().enumerate() {
                labels[e * max_len + i] = label as f64;
            }
            label_lengths.push(example.labels.len() as f64);
        }
        Split::table(
            count,
            [
                ("x", vec![count, frames, f], x),
                ("input_lengths", vec![count], input_lengths),
                ("labels", vec![count, max_len], labels),
                ("label_lengths", vec![count], label_lengths),
            ],
        )
    }
}

/// Fills the splits of a `speech` dataset.
pub fn synthesize(dataset: &Dataset, data: &mut Data) {
    let speech = Speech::from_dataset(dataset);
    let source = &dataset.source;
    data.train = speech.split(0, source.int("train").unwrap_or(10000) as usize);
    data.val = speech.split(1, source.int("val").unwrap_or(1000) as usize);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Speech {
        Speech {
            vocab: 5,
            len: (2, 6),
            duration: (2, 3),
            silence: 0.3,
            noise: 0.5,
            features: 4,
            seed: 3,
        }
    }

    #[test]
    fn examples_fit_their_frames_and_repeats_are_separated_by_silence() {
        let speech = task();
        assert_eq!(speech.frames(), 39);
        for index in 0..200 {
            let example = speech.example(0, index);
            let n = example.labels.len();
            assert!((2..=6).contains(&n));
            assert!(example.labels.iter().all(|&l| (1..=5).contains(&l)));
            assert!(example.length <= speech.frames());
            assert_eq!(example.frames.len(), example.length * 4);
            let repeats = example.labels.windows(2).filter(|w| w[0] == w[1]).count();
            // Each symbol 2..3 frames, and a gap of 2..3 before each repeat.
            assert!(example.length >= 2 * n + 2 * repeats, "{example:?}");
            // CTC needs a frame per label and one more per repeat.
            assert!(example.length >= n + repeats);
        }
    }

    #[test]
    fn examples_are_seeded_and_splits_differ() {
        let speech = task();
        assert_eq!(speech.example(0, 7), speech.example(0, 7));
        assert_ne!(speech.example(0, 7), speech.example(1, 7));
        let other = Speech { seed: 4, ..speech };
        assert_ne!(speech.example(0, 7), other.example(0, 7));
    }
}
