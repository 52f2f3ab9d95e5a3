//! A team of threads that run a compiled step together: the caller runs
//! part 0 and helper `t` runs part `t` (and every part that is `t` modulo
//! the team's size). The step is run as one job with one part per thread;
//! inside it each thread takes its share of every split kernel (so a split
//! of the same rows lands on the same core from one kernel to the next and
//! their data stays in its cache) and the threads meet at [`Team::barrier`]
//! between kernels that depend on each other.
//!
//! A job is handed over through one cache line (the job and its sequence
//! number) and each helper reports through its own line, so a fork and a
//! join cost one round trip between cores; a barrier costs one write per
//! thread and one read of every other thread's line. Helpers spin for a
//! while after each job (steps come back to back) and then sleep.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The current job: a function of the part number, and how many parts.
#[derive(Clone, Copy)]
struct Job {
    function: *const (dyn Fn(usize) + Sync),
    parts: usize,
}

/// A value alone on its cache lines, so writers on different cores do not
/// disturb each other.
#[repr(align(128))]
struct Line<T>(T);

struct Shared {
    /// The job of sequence number `sequence` (written by the caller before
    /// it publishes the number).
    job: Line<(UnsafeCell<Job>, AtomicU64)>,
    /// Per helper: the last sequence number it finished.
    done: Vec<Line<AtomicU64>>,
    /// Per thread: how many barriers it has reached.
    arrived: Vec<Line<AtomicU64>>,
    /// Helpers asleep (or about to be), guarded for wake-ups by `lock`.
    sleeping: Line<AtomicU64>,
    lock: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
}

// Safety: the job is written only by the (single, see `Team::busy`) caller
// while no helper is working, before the release store of its sequence
// number, and read by helpers after the acquire load of that number; the
// function it points to is alive until every helper reported it done.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// How long a helper spins before sleeping.
const SPIN: Duration = Duration::from_micros(300);

pub struct Team {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
    /// Serializes callers.
    busy: Mutex<u64>,
}

fn nothing(_: usize) {}

impl Team {
    pub fn new(threads: usize) -> Team {
        let empty: &(dyn Fn(usize) + Sync) = &nothing;
        let helpers = threads.max(1) - 1;
        let shared = Arc::new(Shared {
            job: Line((
                UnsafeCell::new(Job {
                    function: empty as *const _,
                    parts: 0,
                }),
                AtomicU64::new(0),
            )),
            done: (0..helpers).map(|_| Line(AtomicU64::new(0))).collect(),
            arrived: (0..=helpers).map(|_| Line(AtomicU64::new(0))).collect(),
            sleeping: Line(AtomicU64::new(0)),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let helpers = (0..helpers)
            .map(|h| {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || helper(&shared, h))
            })
            .collect();
        Team {
            shared,
            helpers,
            busy: Mutex::new(0),
        }
    }

    pub fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Runs `job(0..parts)`, part `p` on thread `p % threads` (the caller
    /// is thread 0); returns when all are done.
    pub fn run(&self, parts: usize, job: &(dyn Fn(usize) + Sync)) {
        if parts <= 1 || self.helpers.is_empty() {
            (0..parts).for_each(job);
            return;
        }
        let mut sequence = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        *sequence += 1;
        let s = &*self.shared;
        // Safety: only the lifetime is erased; see `Shared`.
        let function: *const (dyn Fn(usize) + Sync) =
            unsafe { std::mem::transmute(job as *const (dyn Fn(usize) + Sync)) };
        // Safety: every helper finished the previous job (the caller waited
        // for it), so nobody reads the job now.
        unsafe { *s.job.0 .0.get() = Job { function, parts } };
        s.job.0 .1.store(*sequence, Ordering::SeqCst);
        if s.sleeping.0.load(Ordering::SeqCst) > 0 {
            let _lock = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let threads = self.threads();
        (0..parts).step_by(threads).for_each(job);
        for done in &s.done {
            spin_until(|| done.0.load(Ordering::Acquire) == *sequence);
        }
    }
}

impl Team {
    /// Waits until every thread of the team reached its matching barrier.
    /// Only for the parts of one job with `parts == threads` (every thread
    /// calls it equally often, or the team deadlocks).
    pub fn barrier(&self, thread: usize) {
        let arrived = &self.shared.arrived;
        let epoch = arrived[thread].0.load(Ordering::Relaxed) + 1;
        arrived[thread].0.store(epoch, Ordering::Release);
        for (t, other) in arrived.iter().enumerate() {
            if t != thread {
                spin_until(|| other.0.load(Ordering::Acquire) >= epoch);
            }
        }
    }
}

/// Spins until `ready()`: the waits here are short (a barrier between
/// kernels, the end of a step's parts) when every thread has a core. When
/// the machine is busier than the team (other processes, a build), the
/// thread being waited for may have no core at all: after a few
/// microseconds of spinning the waiter yields its core at each check
/// instead of burning the time slice the other thread needs.
pub(super) fn spin_until(ready: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !ready() {
        if spins < SPIN_BEFORE_YIELD {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Spin iterations (about 10–40 ns each) before a waiter starts yielding.
const SPIN_BEFORE_YIELD: u32 = 1 << 12;

/// The barrier generated code calls; nothing when `team` is null (one
/// thread runs the step).
///
/// # Safety
/// `team` is null or points to a live [`Team`] running the calling step,
/// and `thread` is the caller's part number.
pub unsafe extern "C" fn nnc_barrier(team: *const Team, thread: usize) {
    if let Some(team) = unsafe { team.as_ref() } {
        team.barrier(thread)
    }
}

fn helper(s: &Shared, h: usize) {
    let threads = s.done.len() + 1;
    let mut seen = 0;
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        let mut sequence = s.job.0 .1.load(Ordering::Acquire);
        while sequence == seen {
            if s.stop.load(Ordering::Relaxed) {
                return;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && start.elapsed() > SPIN {
                let mut lock = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleeping.0.fetch_add(1, Ordering::SeqCst);
                while s.job.0 .1.load(Ordering::SeqCst) == seen && !s.stop.load(Ordering::SeqCst) {
                    lock = s.wake.wait(lock).unwrap_or_else(|e| e.into_inner());
                }
                s.sleeping.0.fetch_sub(1, Ordering::SeqCst);
            }
            sequence = s.job.0 .1.load(Ordering::Acquire);
        }
        seen = sequence;
        // Safety: see `Shared`.
        let job = unsafe { *s.job.0 .0.get() };
        (h + 1..job.parts)
            .step_by(threads)
            .for_each(|p| unsafe { (*job.function)(p) });
        s.done[h].0.store(sequence, Ordering::Release);
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _lock = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for helper in self.helpers.drain(..) {
            let _ = helper.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Every thread sees every other thread's writes from before a
    /// barrier, job after job, also with more threads than cores (then
    /// the waiters yield: a test machine has two).
    #[test]
    fn barriers_order_the_threads_writes() {
        for threads in [2, 4] {
            let team = Team::new(threads);
            let slots: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
            let errors = AtomicUsize::new(0);
            for job in 0..10 {
                team.run(threads, &|part| {
                    for round in 1..=50 {
                        let value = job * 1000 + round;
                        slots[part].store(value, Ordering::Relaxed);
                        team.barrier(part);
                        let seen = slots.iter().filter(|s| s.load(Ordering::Relaxed) == value).count();
                        if seen != threads {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        team.barrier(part);
                    }
                });
            }
            assert_eq!(errors.load(Ordering::Relaxed), 0, "{threads} threads");
        }
    }
}
