//! Chooses, step by step, whether the team or the calling thread alone runs
//! a compiled step. Both give the same bits (see `compile.rs`); which one
//! is faster depends on the machine at the moment. On the project machine
//! the round trip between the two vCPUs moves between ~100 ns and ~900 ns
//! over minutes, and the MLP step on two threads between 45 us and 125 us,
//! while one thread stays at 60 us. So the tuner times every step, keeps
//! the faster way, and now and then tries the other one again.
//!
//! Each way is timed over a block of steps, leaving out the first step of
//! the block: that step also moves the data between the cores' caches (a
//! step on one thread after steps on two pulls the other core's rows), a
//! cost of switching rather than of the way. Alternating step by step made
//! the LSTM look as fast on one thread as on two (it is 1.6x slower).
//!
//! A wrong choice is costly (a step of the wide MLP takes 8 ms on the
//! team and 14 ms on one thread) and one disturbed block can cause it, so
//! the team, the way expected to win, is left only when one thread is
//! faster by a margin, and the way taken is tried against the other one
//! soon after every switch: the probes start `FIRST_PROBE` steps apart
//! (`LEFT_TEAM_PROBE` after leaving the team) and double in distance while
//! the choice holds, up to `PROBE_EVERY`; a probe that lost by much is
//! followed by the next only when its cost is at most `PROBE_SHARE` of the
//! steps between (the first comparison included). A block
//! on the other way ends as soon as its outcome is decided: once enough of
//! its steps miss the bar that its median cannot get under it, the rest of
//! the block would only spend more steps on the slower way (the wide MLP's
//! probes of one thread take 3 steps instead of 5).
//!
//! In: the seconds each step took. Out: how many threads run the next one.
//! It allocates nothing.

/// Samples kept per way (the last ones).
const WINDOW: usize = 4;
/// Steps of a block that times one way: a step to switch, then `WINDOW`.
const BLOCK: usize = WINDOW + 1;
/// Steps run on the team before anything is timed: the first steps fault
/// pages in and fill caches and the libraries' buffers.
const SETTLE: usize = 3;
/// Most steps between two trials of the way not taken.
const PROBE_EVERY: usize = 256;
/// Steps before the first trial after a switch (then twice as many after
/// each trial that keeps the choice).
const FIRST_PROBE: usize = 16;
/// The same after leaving the team, the way expected to win: a block the
/// host disturbed is the likelier reason, and every step on one thread
/// then costs up to twice the team's.
const LEFT_TEAM_PROBE: usize = 4;
/// The other way must be this much faster to be taken.
const MARGIN: f64 = 0.95;
/// A probe that lost by a factor `r` cost about `(r - 1)` steps of the
/// chosen way for each of its steps; the next probe waits until that is
/// at most this share of the steps in between. On a busy machine the team
/// can be ten or twenty times slower than one thread (its threads wait at
/// every barrier for a core), where probes at the usual distances would
/// spend more time than the steps between them.
const PROBE_SHARE: f64 = 0.1;
/// Most steps between two trials after a costly one.
const PROBE_MOST: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// Step `n` of the first comparison: `SETTLE` steps, a block on the
    /// team, then one on one thread.
    First(usize),
    /// Step `n` on the chosen way since the last switch.
    Steady(usize),
    /// Step `n` of a block on the other way.
    Probe(usize),
}

/// Way 0 is the team, way 1 the calling thread alone.
#[derive(Clone, Debug)]
pub struct Tuner {
    team: usize,
    adaptive: bool,
    samples: [[f64; WINDOW]; 2],
    counts: [usize; 2],
    chosen: usize,
    phase: Phase,
    /// Steps on the chosen way before the next probe.
    probe_after: usize,
    /// Timed steps of the current block on the other way that missed the
    /// bar (see [`Tuner::lost`]).
    missed: usize,
    /// The fastest timed step of the current block on the other way.
    probe_best: f64,
    /// Steps run by the team, and in all.
    on_team: u64,
    steps: u64,
}

impl Tuner {
    /// A tuner for a team of `team` threads; with `adaptive` false (or a
    /// team of one) every step runs on the whole team.
    pub fn new(team: usize, adaptive: bool) -> Tuner {
        Tuner {
            team: team.max(1),
            adaptive: adaptive && team > 1,
            samples: [[0.0; WINDOW]; 2],
            counts: [0; 2],
            chosen: 0,
            probe_after: FIRST_PROBE,
            missed: 0,
            probe_best: f64::INFINITY,
            phase: if adaptive && team > 1 {
                Phase::First(0)
            } else {
                Phase::Steady(0)
            },
            on_team: 0,
            steps: 0,
        }
    }

    fn way(&self) -> usize {
        match self.phase {
            Phase::First(n) => usize::from(n >= SETTLE + BLOCK),
            Phase::Steady(_) => self.chosen,
            Phase::Probe(_) => 1 - self.chosen,
        }
    }

    /// Threads for the next step: the team's size, or 1.
    pub fn threads(&self) -> usize {
        if self.way() == 0 {
            self.team
        } else {
            1
        }
    }

    /// Records the time of the step that [`Tuner::threads`] chose.
    pub fn record(&mut self, seconds: f64) {
        let way = self.way();
        self.steps += 1;
        if way == 0 && self.team > 1 {
            self.on_team += 1;
        }
        if !self.adaptive {
            return;
        }
        let switching = match self.phase {
            Phase::First(n) => n < SETTLE || (n - SETTLE).is_multiple_of(BLOCK),
            Phase::Steady(n) | Phase::Probe(n) => n == 0,
        };
        // The way a block on the other way must beat: the team in the
        // first comparison, the chosen way in a probe.
        let reference = match self.phase {
            Phase::First(n) if n >= SETTLE + BLOCK => Some(0),
            Phase::Probe(_) => Some(self.chosen),
            _ => None,
        };
        if !switching {
            self.samples[way][self.counts[way] % WINDOW] = seconds;
            self.counts[way] += 1;
            if let Some(reference) = reference {
                self.missed += usize::from(seconds >= MARGIN * self.median(reference));
                self.probe_best = self.probe_best.min(seconds);
            }
        }
        self.phase = match self.phase {
            Phase::First(n) if n + 1 < SETTLE + 2 * BLOCK && !self.lost() => Phase::First(n + 1),
            Phase::First(_) if self.lost() => {
                self.chosen = 0;
                self.probe_after = self.after_losing_probe();
                self.log("first comparison, decided early", Some(1));
                self.missed = 0;
                self.probe_best = f64::INFINITY;
                Phase::Steady(0)
            }
            Phase::First(_) => {
                self.chosen = usize::from(self.median(1) < MARGIN * self.median(0));
                self.probe_after = if self.chosen == 0 {
                    self.after_losing_probe()
                } else {
                    self.first_probe()
                };
                self.missed = 0;
                self.probe_best = f64::INFINITY;
                self.log("first comparison", None);
                Phase::Steady(usize::from(self.chosen == 1))
            }
            Phase::Steady(n) if n + 1 < self.probe_after => Phase::Steady(n + 1),
            Phase::Steady(_) => Phase::Probe(0),
            Phase::Probe(n) if n + 1 < BLOCK && !self.lost() => Phase::Probe(n + 1),
            Phase::Probe(_) => {
                let probed = 1 - self.chosen;
                if !self.lost() && self.median(probed) < MARGIN * self.median(self.chosen) {
                    self.chosen = probed;
                    self.probe_after = self.first_probe();
                } else {
                    self.probe_after = (2 * self.probe_after)
                        .min(PROBE_EVERY)
                        .max(gap_after_losing(self.lost_by()));
                }
                if self.lost() {
                    self.log("probe, decided early", Some(probed));
                } else {
                    self.log("probe", None);
                }
                self.missed = 0;
                self.probe_best = f64::INFINITY;
                Phase::Steady(0)
            }
        };
    }

    /// With `NNC_TUNE_LOG` set, prints a decision and what it was based on:
    /// each way's median, or for a block ended early (`early`: its way)
    /// how many of its times missed the bar (its ring of times then still
    /// holds older ones, so its median would mislead).
    fn log(&self, what: &str, early: Option<usize>) {
        if std::env::var_os("NNC_TUNE_LOG").is_none() {
            return;
        }
        let way = |w: usize| match early {
            Some(e) if e == w => format!("{} of its times over the bar", self.missed),
            _ => format!("{:.1} us", 1e6 * self.median(w)),
        };
        eprintln!(
            "tune: {what} at step {}: {} threads {}, 1 thread {}: {}",
            self.steps,
            self.team,
            way(0),
            way(1),
            if self.chosen == 0 { "team" } else { "one thread" }
        );
    }

    /// Steps before the first trial after switching to the chosen way.
    fn first_probe(&self) -> usize {
        if self.chosen == 1 {
            LEFT_TEAM_PROBE
        } else {
            FIRST_PROBE
        }
    }

    /// Steps before the first trial after a first comparison that kept the
    /// team: `FIRST_PROBE`, or longer when one thread lost by much (the
    /// probes' share of the time bounded as after any losing probe; the
    /// wide MLP's one thread, twice the team's time, waits 30 steps).
    fn after_losing_probe(&self) -> usize {
        let lost_by = self.lost_by();
        if !lost_by.is_finite() {
            return FIRST_PROBE;
        }
        FIRST_PROBE.max(gap_after_losing(lost_by))
    }

    /// By how much the block on the other way lost: its fastest step over
    /// the chosen way's median.
    fn lost_by(&self) -> f64 {
        self.probe_best / self.median(self.chosen)
    }

    /// Whether the current block on the other way has lost already: its
    /// median (element `WINDOW / 2` of its `WINDOW` sorted times) stays at
    /// or above the bar once `WINDOW - WINDOW / 2` of its times are.
    fn lost(&self) -> bool {
        self.missed >= WINDOW - WINDOW / 2
    }

    fn median(&self, way: usize) -> f64 {
        let n = self.counts[way].min(WINDOW);
        if n == 0 {
            return f64::INFINITY;
        }
        let mut v = self.samples[way];
        let v = &mut v[..n];
        v.sort_by(f64::total_cmp);
        v[n / 2]
    }

    /// How many of the steps so far ran on more than one thread.
    pub fn team_steps(&self) -> u64 {
        self.on_team
    }
}

/// Steps before the next probe after one that lost by `lost_by` (its
/// fastest step over the chosen way's median), so that probes cost at most
/// `PROBE_SHARE` of the time.
fn gap_after_losing(lost_by: f64) -> usize {
    let excess = BLOCK_LOST as f64 * (lost_by - 1.0).max(0.0);
    ((excess / PROBE_SHARE).ceil() as usize).min(PROBE_MOST)
}

/// Steps of a block on the other way that loses every timed step: the
/// switching step and the misses that decide it.
const BLOCK_LOST: usize = 1 + WINDOW - WINDOW / 2;

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `steps` steps where the team takes `team_time(step)` seconds
    /// and one thread 1.0; returns the threads of each step.
    fn drive(tuner: &mut Tuner, steps: usize, team_time: impl Fn(usize) -> f64) -> Vec<usize> {
        (0..steps)
            .map(|s| {
                let threads = tuner.threads();
                tuner.record(if threads > 1 { team_time(s) } else { 1.0 });
                threads
            })
            .collect()
    }

    #[test]
    fn keeps_the_faster_way_and_follows_a_change() {
        let mut tuner = Tuner::new(2, true);
        // The team is faster at first, slower after step 1000.
        let threads = drive(&mut tuner, 2000, |s| if s < 1000 { 0.6 } else { 2.0 });
        // Settling and a block on the team, then a block on one thread
        // that has lost after its switching step and two timed steps.
        assert_eq!(
            threads[..SETTLE + BLOCK + LOSING + 1],
            [2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2]
        );
        // Then the team, but for probes of WINDOW steps every PROBE_EVERY.
        let team_share =
            |r: std::ops::Range<usize>| threads[r.clone()].iter().filter(|&&t| t == 2).count() as f64 / r.len() as f64;
        assert!(team_share(SETTLE + 2 * BLOCK..1000) > 0.95);
        // After the change, the next probe finds one thread faster.
        assert!(team_share(1000 + PROBE_EVERY + 2 * BLOCK..2000) < 0.05);
    }

    const LOSING: usize = BLOCK_LOST;

    /// Losing probes in `steps` steps of a choice that holds, each losing
    /// by `lost_by`: they start `FIRST_PROBE` apart and double in distance
    /// up to `PROBE_EVERY`, or wait longer after a costly loss.
    fn probes_within(steps: usize, lost_by: f64) -> usize {
        let (mut at, mut gap, mut probes) = (0, FIRST_PROBE.max(gap_after_losing(lost_by)), 0);
        while at + gap + LOSING <= steps {
            at += gap + LOSING;
            gap = (2 * gap).min(PROBE_EVERY).max(gap_after_losing(lost_by));
            probes += 1;
        }
        probes
    }

    #[test]
    fn noise_below_the_margin_does_not_flip() {
        let mut tuner = Tuner::new(2, true);
        let threads = drive(&mut tuner, 3000, |s| if s % 2 == 0 { 0.97 } else { 0.99 });
        let first = SETTLE + BLOCK + LOSING;
        let switches = threads[first..].windows(2).filter(|w| w[0] != w[1]).count();
        // Only the probes switch, twice each.
        assert_eq!(switches, 2 * probes_within(3000 - first, 1.0), "{threads:?}");
    }

    #[test]
    fn a_disturbed_first_comparison_is_undone_soon() {
        let mut tuner = Tuner::new(2, true);
        // The team's first block is disturbed (slower than one thread);
        // afterwards the team takes half the time of one thread.
        let first = SETTLE + 2 * BLOCK;
        let threads = drive(&mut tuner, 200, |s| if s < SETTLE + BLOCK { 1.2 } else { 0.5 });
        assert_eq!(threads[first], 1);
        // The first probe, `LEFT_TEAM_PROBE` steps later, finds the team
        // faster and takes it: at most a few steps run on one thread.
        let back = first + 2 * BLOCK;
        assert!(threads[first..back].contains(&2), "{threads:?}");
        let team = threads[back..].iter().filter(|&&t| t == 2).count();
        assert!(team as f64 > 0.9 * (threads.len() - back) as f64, "{threads:?}");
    }

    #[test]
    fn the_team_is_kept_unless_one_thread_wins_by_the_margin() {
        let mut tuner = Tuner::new(2, true);
        let threads = drive(&mut tuner, SETTLE + 2 * BLOCK + 1, |_| 1.02);
        assert_eq!(threads[SETTLE + 2 * BLOCK], 2);
    }

    /// The first step of each block pays for moving the data between the
    /// caches; the tuner leaves it out.
    #[test]
    fn the_switching_step_is_not_counted() {
        let mut tuner = Tuner::new(2, true);
        let mut last = 0;
        for _ in 0..SETTLE + 2 * BLOCK {
            let threads = tuner.threads();
            let time = if threads != last {
                100.0
            } else if threads == 2 {
                0.6
            } else {
                0.5
            };
            last = threads;
            tuner.record(time);
        }
        assert_eq!(tuner.counts, [WINDOW, WINDOW]);
        assert_eq!((tuner.median(0), tuner.median(1)), (0.6, 0.5), "{:?}", tuner.samples);
        assert_eq!(tuner.threads(), 1);
    }

    /// A block on the other way stops once it cannot win, and the one that
    /// still can runs whole: the first comparison's block on one thread
    /// with times 0.9, 1.5, 0.9, 0.9 against the team's 1.0 misses the bar
    /// (0.95) once, runs its four timed steps and wins.
    #[test]
    fn a_block_runs_until_its_outcome_is_decided() {
        let mut tuner = Tuner::new(2, true);
        let one_thread = [0.9, 1.5, 0.9, 0.9];
        let mut threads = Vec::new();
        for step in 0..SETTLE + 2 * BLOCK + 1 {
            let t = tuner.threads();
            threads.push(t);
            let timed = step.saturating_sub(SETTLE + BLOCK + 1);
            tuner.record(if t == 2 { 1.0 } else { one_thread[timed.min(3)] });
        }
        assert_eq!(threads, [2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
        // Against a team twice as fast, the probes of one thread take
        // `LOSING` steps each, and nothing else leaves the team.
        let mut tuner = Tuner::new(2, true);
        let steps = 1000;
        let threads = drive(&mut tuner, steps, |_| 0.5);
        let first = SETTLE + BLOCK + LOSING;
        let alone = threads.iter().filter(|&&t| t == 1).count();
        assert_eq!(alone, LOSING * (1 + probes_within(steps - first, 2.0)), "{threads:?}");
    }

    /// A first comparison that one thread lost by a factor 2 is followed
    /// by the next probe only when its cost is a bounded share of the
    /// steps between (30 steps on, not `FIRST_PROBE`).
    #[test]
    fn the_first_probe_after_a_costly_comparison_waits() {
        let mut tuner = Tuner::new(2, true);
        let threads = drive(&mut tuner, 100, |_| 0.5);
        let first = SETTLE + BLOCK + LOSING;
        assert_eq!(threads[first - LOSING..first + 1], [1, 1, 1, 2], "{threads:?}");
        let next = first + threads[first..].iter().position(|&t| t == 1).expect("a probe");
        assert_eq!(next - first, gap_after_losing(2.0), "{threads:?}");
        assert_eq!(gap_after_losing(2.0), 30);
        // Without a time of the way that lost, the usual distance.
        let mut tuner = Tuner::new(2, true);
        tuner.samples[0] = [0.5; WINDOW];
        tuner.counts[0] = WINDOW;
        assert_eq!(tuner.after_losing_probe(), FIRST_PROBE);
        tuner.probe_best = 1.0;
        assert_eq!(tuner.after_losing_probe(), 30);
    }

    /// On a busy machine the team can be far slower than one thread; its
    /// probes then come rarely enough to cost about `PROBE_SHARE` of the
    /// time (at the doubling distances alone they would cost more than
    /// the steps between them: 7 probes of 3 steps at 20 in 500 steps).
    #[test]
    fn probes_of_a_team_far_slower_cost_a_bounded_share() {
        for slower in [3.0, 20.0] {
            let mut tuner = Tuner::new(2, true);
            let steps = 3000;
            let threads = drive(&mut tuner, steps, |_| slower);
            let first = SETTLE + 2 * BLOCK;
            assert_eq!(threads[first], 1, "{threads:?}");
            let time: f64 = threads[first..]
                .iter()
                .map(|&t| if t == 2 { slower } else { 1.0 })
                .sum();
            let alone = (steps - first) as f64;
            // The first probe comes `LEFT_TEAM_PROBE` steps after leaving
            // the team whatever it cost (a disturbed block is likelier).
            let first_probe = LOSING as f64 * (slower - 1.0);
            assert!(
                time <= (1.0 + 1.1 * PROBE_SHARE) * alone + first_probe,
                "team {slower}x slower: {time} against {alone} on one thread"
            );
            // Still probed: a machine that becomes quiet again is noticed.
            assert!(threads[first..].contains(&2), "{slower}");
        }
    }

    #[test]
    fn not_adaptive_means_always_the_team() {
        let mut tuner = Tuner::new(2, false);
        assert!(drive(&mut tuner, 600, |_| 5.0).iter().all(|&t| t == 2));
        assert_eq!(tuner.team_steps(), 600);
        let mut single = Tuner::new(1, true);
        assert!(drive(&mut single, 10, |_| 1.0).iter().all(|&t| t == 1));
        assert_eq!(single.team_steps(), 0);
    }
}
