//! Programs for the whole-pipeline fuzzer (`pipeline_fuzz.rs`): a seeded
//! generator of well-formed `.nn` programs (`generate.rs`) and meaning-level
//! mutations of the examples (`mutate.rs`). In: a seed (and, for mutations,
//! the examples' text). Out: program text whose data paths are absolute.

pub mod generate;
pub mod mutate;

/// The fuzzers' generator (`fuzz.rs`), shared.
pub use crate::fuzz::Rng;

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
