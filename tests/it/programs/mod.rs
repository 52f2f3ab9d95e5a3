//! Programs for the whole-pipeline fuzzer (`pipeline_fuzz.rs`): a seeded
//! generator of well-formed `.nn` programs (`generate.rs`) and meaning-level
//! mutations of the examples (`mutate.rs`). In: a seed (and, for mutations,
//! the examples' text). Out: program text whose data paths are absolute.

pub mod generate;
pub mod mutate;

/// xorshift64*: a small deterministic generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Mix the seed so nearby seeds start far apart.
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// Items drawn without replacement, reshuffled when used up, so every item
/// comes up once per round whatever the seed.
pub struct Deck<T: Copy> {
    items: Vec<T>,
    left: Vec<T>,
}

impl<T: Copy> Deck<T> {
    pub fn new(items: &[T]) -> Deck<T> {
        Deck {
            items: items.to_vec(),
            left: Vec::new(),
        }
    }

    pub fn draw(&mut self, rng: &mut Rng) -> T {
        if self.left.is_empty() {
            self.left = self.items.clone();
            rng.shuffle(&mut self.left);
        }
        self.left.pop().expect("a deck has items")
    }
}
