//! The generated `slots` task for tagging: a checked `slots(...)` source in,
//! train and validation splits out. Each example is a travel request in
//! words ("book a flight from boston to new york tomorrow morning") with a
//! tag per word: the destination, the departure, the time, or other. Cities
//! can be either end of a trip, so a city's tag comes from its context
//! ("from", "to", "arriving in", "boston to denver"); cities are drawn with
//! Zipf-like frequencies, so the rarest are rare enough to share the "other"
//! word id. Either city may come without a word before it, told only by
//! the words after it ("boston to denver", "denver from boston"): a tagger
//! reading left to right cannot tell these from each other when it reaches
//! the city.
//!
//! Words become ids by frequency in the training split: 0 pads, 1 is "other"
//! (every word outside the `vocab - 2` most frequent), then the words from
//! the most frequent. Tags are 0 other, 1 destination, 2 departure, 3 time,
//! and [`PAD_TAG`] after a request's end. Everything is drawn from the seed,
//! the two splits from different streams.

use std::collections::HashMap;

use ndarray::ArrayD;

use super::data::{Data, Split};
use crate::check::data::{Dataset, SLOT_WORDS};
use crate::interp::random;

/// Tag ids.
pub const OTHER: usize = 0;
pub const DESTINATION: usize = 1;
pub const DEPARTURE: usize = 2;
pub const TIME: usize = 3;
/// The tag of positions after a request's last word (ignored by the loss
/// with `ignore: d.pad` and by `token_accuracy`).
pub const PAD_TAG: usize = crate::check::data::SLOT_TAGS as usize;
/// The names of the tags, by id.
pub const TAG_NAMES: [&str; 4] = ["other", "destination", "departure", "time"];

/// Word ids with a meaning of their own.
pub const PAD_WORD: usize = 0;
pub const OTHER_WORD: usize = 1;

const CITIES: &[&str] = &[
    "boston",
    "new york",
    "chicago",
    "denver",
    "seattle",
    "dallas",
    "atlanta",
    "san francisco",
    "miami",
    "houston",
    "phoenix",
    "detroit",
    "portland",
    "las vegas",
    "orlando",
    "salt lake city",
    "austin",
    "nashville",
    "pittsburgh",
    "baltimore",
    "philadelphia",
    "minneapolis",
    "st louis",
    "kansas city",
    "tampa",
    "charlotte",
    "san diego",
    "cleveland",
    "cincinnati",
    "milwaukee",
    "memphis",
    "new orleans",
    "oakland",
    "sacramento",
    "raleigh",
    "omaha",
    "tucson",
    "albuquerque",
    "el paso",
    "buffalo",
    "anchorage",
    "honolulu",
    "boise",
    "spokane",
    "des moines",
    "little rock",
    "fargo",
    "savannah",
    "santa fe",
    "burlington",
];

/// What starts a request (tagged other).
const OPENERS: &[&str] = &[
    "i want to fly",
    "i would like to fly",
    "book a flight",
    "show me flights",
    "i need a ticket",
    "find me a cheap flight",
    "please book me a seat",
    "are there any flights",
    "i have to get",
    "get me",
    "flights",
    "what trains go",
    "i want to travel",
];

/// Words before the destination (tagged other).
const TO: &[&str] = &[
    "to",
    "for",
    "arriving in",
    "into",
    "going to",
    "landing in",
    "headed to",
];
/// Words before the departure (tagged other).
const FROM: &[&str] = &[
    "from",
    "leaving",
    "out of",
    "departing from",
    "leaving from",
    "starting in",
];
/// What may end a request (tagged other).
const CLOSERS: &[&str] = &[
    "",
    "",
    "please",
    "thanks",
    "one way",
    "with one stop",
    "for two people",
    "round trip",
    "if possible",
    "on a budget",
];

const HOURS: &[&str] = &[
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
];
const DAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const PARTS: &[&str] = &["morning", "afternoon", "evening", "night"];

/// Random streams: the draws of the training and validation splits.
const DRAW_STREAM: u64 = 40;

/// The most words of one phrase list.
fn longest(phrases: &[&str]) -> usize {
    phrases.iter().map(|p| p.split_whitespace().count()).max().unwrap_or(0)
}

/// The longest request the generator writes: an opener, the destination,
/// the departure, a time phrase (at most four words: "at ten thirty pm")
/// and a closer. `check::data::SLOT_WORDS` must be this.
pub fn max_words() -> usize {
    let city = longest(CITIES);
    longest(OPENERS) + longest(TO) + city + longest(FROM) + city + 4 + longest(CLOSERS)
}

/// One request: its words and their tags.
pub type Request = Vec<(&'static str, usize)>;

/// Settings of the task, read from the validated source.
#[derive(Clone, Copy, Debug)]
pub struct Slots {
    pub vocab: usize,
    pub seed: u64,
}

impl Slots {
    pub fn from_dataset(dataset: &Dataset) -> Slots {
        let source = &dataset.source;
        Slots {
            vocab: source.int("vocab").unwrap_or(100) as usize,
            seed: source.int("seed").unwrap_or(0) as u64,
        }
    }

    /// Request `index` of split `split` (0 train, 1 validation).
    pub fn request(&self, split: u64, index: u64) -> Request {
        let mut draws = 0u64;
        let mut draw = || {
            draws += 1;
            random::bits(self.seed, index, DRAW_STREAM + split, draws)
        };
        let mut out: Request = Vec::new();
        let push = |out: &mut Request, phrase: &'static str, tag: usize| {
            out.extend(phrase.split_whitespace().map(|w| (w, tag)));
        };
        let choose = |draw: &mut dyn FnMut() -> u64, list: &[&'static str]| list[(draw() % list.len() as u64) as usize];
        push(&mut out, choose(&mut draw, OPENERS), OTHER);
        // Destination always; departure and time most of the time; in a
        // random order.
        let destination = zipf_city(draw());
        let departure = (draw() % 4 != 0).then(|| {
            // Two different cities.
            let city = zipf_city(draw());
            if city == destination {
                CITIES[(CITIES.iter().position(|c| *c == city).unwrap_or(0) + 1) % CITIES.len()]
            } else {
                city
            }
        });
        let time = draw() % 3 != 0;
        let mut parts = vec![0u8];
        if departure.is_some() {
            parts.push(1);
        }
        if time {
            parts.push(2);
        }
        for i in (1..parts.len()).rev() {
            let j = (draw() % (i as u64 + 1)) as usize;
            parts.swap(i, j);
        }
        for (k, &part) in parts.iter().enumerate() {
            match part {
                0 => {
                    // "denver from boston": the destination without a word
                    // before it, told by the departure after it.
                    let bare = parts.get(k + 1) == Some(&1) && draw() % 3 == 0;
                    if !bare {
                        push(&mut out, choose(&mut draw, TO), OTHER);
                    }
                    push(&mut out, destination, DESTINATION);
                }
                1 => {
                    // "boston to denver": the departure without a word before
                    // it, told by the "to" after it.
                    let bare = parts.get(k + 1) == Some(&0) && draw() % 3 == 0;
                    if !bare {
                        push(&mut out, choose(&mut draw, FROM), OTHER);
                    }
                    push(&mut out, departure.unwrap_or(CITIES[0]), DEPARTURE);
                }
                _ => time_phrase(&mut draw, &mut out),
            }
        }
        push(&mut out, choose(&mut draw, CLOSERS), OTHER);
        out
    }

    /// `count` requests of split `split`.
    fn requests(&self, split: u64, count: usize) -> Vec<Request> {
        (0..count as u64).map(|i| self.request(split, i)).collect()
    }
}

/// A city with probability falling as 1/rank.
fn zipf_city(bits: u64) -> &'static str {
    let weights: Vec<f64> = (0..CITIES.len()).map(|i| 1.0 / (i + 1) as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut u = (bits >> 11) as f64 / (1u64 << 53) as f64 * total;
    for (city, w) in CITIES.iter().zip(&weights) {
        if u < *w {
            return city;
        }
        u -= w;
    }
    CITIES[CITIES.len() - 1]
}

/// A time: "at ten thirty pm", "tomorrow morning", "on friday evening",
/// "next tuesday", "around noon". The prepositions are tagged other.
fn time_phrase(draw: &mut dyn FnMut() -> u64, out: &mut Request) {
    let mut pick = |list: &[&'static str]| list[(draw() % list.len() as u64) as usize];
    match pick(&["hour", "hour", "noon", "tomorrow", "day", "next", "this"]) {
        "hour" => {
            out.push((pick(&["at", "before", "after", "around"]), OTHER));
            out.push((pick(HOURS), TIME));
            match pick(&["", "thirty", "fifteen"]) {
                "" => {}
                minutes => out.push((minutes, TIME)),
            }
            out.push((pick(&["am", "pm"]), TIME));
        }
        "noon" => {
            out.push((pick(&["at", "before", "after", "around"]), OTHER));
            out.push((pick(&["noon", "midnight"]), TIME));
        }
        "tomorrow" => {
            out.push(("tomorrow", TIME));
            match pick(&["", "morning", "afternoon", "evening", "night"]) {
                "" => {}
                part => out.push((part, TIME)),
            }
        }
        "day" => {
            out.push(("on", OTHER));
            out.push((pick(DAYS), TIME));
            match pick(&["", "morning", "afternoon", "evening", "night"]) {
                "" => {}
                part => out.push((part, TIME)),
            }
        }
        "next" => {
            out.push(("next", TIME));
            out.push((pick(&["monday", "friday", "sunday", "week", "weekend"]), TIME));
        }
        _ => {
            out.push(("this", TIME));
            out.push((pick(PARTS), TIME));
        }
    }
}

/// The word list of a vocabulary of `size` ids from training requests: pad,
/// other, then the `size - 2` most frequent words (ties alphabetical).
pub fn vocabulary(requests: &[Request], size: usize) -> Vec<&'static str> {
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    for request in requests {
        for (word, _) in request {
            *counts.entry(word).or_insert(0) += 1;
        }
    }
    let mut ranked: Vec<(&'static str, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut words = vec!["<pad>", "<other>"];
    words.extend(ranked.iter().take(size.saturating_sub(2)).map(|(w, _)| *w));
    words
}

/// Requests as a table: `x` word ids and `y` tags, `[count, SLOT_WORDS]`.
fn table(requests: &[Request], index: &HashMap<&'static str, usize>) -> Split {
    let (count, len) = (requests.len(), SLOT_WORDS as usize);
    let mut x = vec![PAD_WORD as f64; count * len];
    let mut y = vec![PAD_TAG as f64; count * len];
    for (e, request) in requests.iter().enumerate() {
        for (i, (word, tag)) in request.iter().enumerate().take(len) {
            x[e * len + i] = *index.get(word).unwrap_or(&OTHER_WORD) as f64;
            y[e * len + i] = *tag as f64;
        }
    }
    Split::table(count, [("x", vec![count, len], x), ("y", vec![count, len], y)])
}

/// Request `row` of a batch with the tags of `scores` (`[N, L, tags]`):
/// words of one tag in brackets after their tag's name, `<other>` for a
/// word outside the vocabulary, and each word whose tag differs from `tags`
/// (`[N, L]`) marked with `✗` and the right tag:
/// `book a flight from departure[boston] to destination[<other> ✗time]`.
pub fn show(words: &[String], ids: &ArrayD<f64>, tags: &ArrayD<f64>, scores: &ArrayD<f64>, row: usize) -> String {
    let len = ids.shape()[1];
    let mut out: Vec<String> = Vec::new();
    let mut open: Option<usize> = None;
    for i in 0..len {
        let reference = tags[[row, i]] as usize;
        if reference == PAD_TAG {
            break;
        }
        let classes = scores.shape()[2];
        let predicted = (0..classes)
            .max_by(|&a, &b| scores[[row, i, a]].total_cmp(&scores[[row, i, b]]))
            .unwrap_or(OTHER);
        let word = words.get(ids[[row, i]] as usize).map_or("?", String::as_str);
        let mut text = word.to_string();
        if predicted != reference {
            text.push_str(&format!(" ✗{}", TAG_NAMES.get(reference).unwrap_or(&"?")));
        }
        if open.is_some() && open != Some(predicted) {
            if let Some(last) = out.last_mut() {
                last.push(']');
            }
            open = None;
        }
        if predicted != OTHER && open.is_none() {
            text = format!("{}[{text}", TAG_NAMES.get(predicted).unwrap_or(&"?"));
            open = Some(predicted);
        }
        out.push(text);
    }
    if open.is_some() {
        if let Some(last) = out.last_mut() {
            last.push(']');
        }
    }
    out.join(" ")
}

/// Fills the splits of a `slots` dataset, and its word list.
pub fn synthesize(dataset: &Dataset, data: &mut Data) {
    let slots = Slots::from_dataset(dataset);
    let source = &dataset.source;
    let train = slots.requests(0, source.int("train").unwrap_or(4000) as usize);
    let val = slots.requests(1, source.int("val").unwrap_or(500) as usize);
    let words = vocabulary(&train, slots.vocab);
    let index: HashMap<&'static str, usize> = words.iter().enumerate().skip(2).map(|(i, w)| (*w, i)).collect();
    data.train = table(&train, &index);
    data.val = table(&val, &index);
    data.words = words.iter().map(|w| w.to_string()).collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    fn task() -> Slots {
        Slots { vocab: 100, seed: 3 }
    }

    #[test]
    fn the_longest_request_is_the_checked_length() {
        assert_eq!(max_words() as i64, SLOT_WORDS);
        let slots = task();
        let longest = (0..5000).map(|i| slots.request(0, i).len()).max().unwrap();
        assert!(longest <= max_words(), "{longest}");
        assert!(longest >= max_words() - 4, "{longest}");
    }

    #[test]
    fn every_request_has_a_destination_and_tags_cities_by_context() {
        let slots = task();
        for index in 0..500 {
            let request = slots.request(1, index);
            let words: Vec<&str> = request.iter().map(|(w, _)| *w).collect();
            assert!(request.iter().any(|(_, t)| *t == DESTINATION), "{words:?}");
            for (i, (word, tag)) in request.iter().enumerate() {
                if *word == "from" {
                    assert_eq!(request[i + 1].1, DEPARTURE, "{words:?}");
                }
                let next = request.get(i + 1).map(|(w, _)| *w);
                if *word == "to" && CITIES.iter().any(|c| c.split_whitespace().next() == next) {
                    assert_eq!(request[i + 1].1, DESTINATION, "{words:?}");
                }
                assert!(*tag < PAD_TAG);
            }
        }
    }

    #[test]
    fn requests_are_seeded_and_splits_differ() {
        let slots = task();
        assert_eq!(slots.request(0, 7), slots.request(0, 7));
        let differ = |a: Slots, s: u64| (0..20).any(|i| slots.request(0, i) != a.request(s, i));
        assert!(differ(slots, 1));
        assert!(differ(Slots { seed: 4, ..slots }, 0));
    }

    #[test]
    fn a_tagging_shows_tags_in_brackets_and_mistakes() {
        let words: Vec<String> = ["<pad>", "<other>", "from", "boston", "to", "new", "york"]
            .iter()
            .map(|w| w.to_string())
            .collect();
        // from boston to new york <pad>; the model tags "york" as time.
        let ids = ArrayD::from_shape_vec(IxDyn(&[1, 6]), vec![2.0, 3.0, 4.0, 5.0, 6.0, 0.0]).unwrap();
        let tags = ArrayD::from_shape_vec(IxDyn(&[1, 6]), vec![0.0, 2.0, 0.0, 1.0, 1.0, 4.0]).unwrap();
        let predicted = [0, 2, 0, 1, 3, 0];
        let mut scores = ArrayD::zeros(IxDyn(&[1, 6, 4]));
        for (i, &p) in predicted.iter().enumerate() {
            scores[[0, i, p]] = 1.0;
        }
        assert_eq!(
            show(&words, &ids, &tags, &scores, 0),
            "from departure[boston] to destination[new] time[york ✗destination]"
        );
    }

    #[test]
    fn rare_words_share_the_other_id() {
        let slots = task();
        let train = slots.requests(0, 2000);
        let words = vocabulary(&train, 40);
        assert_eq!(words.len(), 40);
        assert_eq!(&words[..2], &["<pad>", "<other>"]);
        let index: HashMap<&'static str, usize> = words.iter().enumerate().skip(2).map(|(i, w)| (*w, i)).collect();
        let Split::Table { fields, len } = table(&train, &index) else {
            panic!("a table")
        };
        assert_eq!(len, 2000);
        let x = &fields[0].1;
        let others = x.iter().filter(|&&v| v == OTHER_WORD as f64).count();
        assert!(others > 0);
        // The most frequent city is in the vocabulary, the rarest is not.
        assert!(index.contains_key("boston"));
        assert!(!index.contains_key("burlington"));
    }
}
