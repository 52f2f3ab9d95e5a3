//! A team of threads for splitting one kernel or one matrix product: the
//! caller and `threads - 1` helpers take parts from a shared counter, so a
//! helper that is asleep costs nothing but its wake-up call. Helpers spin
//! for a while after each job (kernels come back to back within a step)
//! and then sleep.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The current job: a function of the part number, and how many parts.
#[derive(Clone, Copy)]
struct Job {
    function: *const (dyn Fn(usize) + Sync),
    parts: usize,
}

struct Shared {
    /// The job of each generation (read by helpers under the lock).
    state: Mutex<(u64, Job)>,
    /// The generation, for spinning without the lock.
    generation: AtomicU64,
    /// `generation << 32 | next part`: a part is taken only in its job's
    /// generation, so a helper late for one job never runs another.
    counter: AtomicU64,
    unfinished: AtomicUsize,
    sleeping: AtomicUsize,
    wake: Condvar,
    stop: AtomicBool,
}

// Safety: the job pointer is only dereferenced for a part taken in its own
// generation, while the caller waits for that part to finish.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// How long a helper spins before sleeping.
const SPIN: Duration = Duration::from_micros(300);

pub struct Team {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
    /// Serializes callers.
    busy: Mutex<()>,
}

fn nothing(_: usize) {}

impl Team {
    pub fn new(threads: usize) -> Team {
        let empty: &(dyn Fn(usize) + Sync) = &nothing;
        let shared = Arc::new(Shared {
            state: Mutex::new((
                0,
                Job {
                    function: empty as *const _,
                    parts: 0,
                },
            )),
            generation: AtomicU64::new(0),
            counter: AtomicU64::new(0),
            unfinished: AtomicUsize::new(0),
            sleeping: AtomicUsize::new(0),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let helpers = (1..threads.max(1))
            .map(|_| {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || helper(&shared))
            })
            .collect();
        Team {
            shared,
            helpers,
            busy: Mutex::new(()),
        }
    }

    pub fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Runs `job(0..parts)`, spread over the team; returns when all are done.
    pub fn run(&self, parts: usize, job: &(dyn Fn(usize) + Sync)) {
        if parts <= 1 || self.helpers.is_empty() {
            (0..parts).for_each(job);
            return;
        }
        let _guard = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        // Safety: only the lifetime is erased; see `Shared`.
        let function: *const (dyn Fn(usize) + Sync) =
            unsafe { std::mem::transmute(job as *const (dyn Fn(usize) + Sync)) };
        let generation = {
            let mut state = s.state.lock().unwrap_or_else(|e| e.into_inner());
            state.0 += 1;
            state.1 = Job { function, parts };
            state.0
        };
        s.unfinished.store(parts, Ordering::Release);
        s.counter.store(generation << 32, Ordering::Release);
        s.generation.store(generation, Ordering::Release);
        if s.sleeping.load(Ordering::Acquire) > 0 {
            let _state = s.state.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        work(s, generation, function, parts);
        while s.unfinished.load(Ordering::Acquire) > 0 {
            std::hint::spin_loop();
        }
    }
}

/// Takes parts of generation `generation` until none are left.
fn work(s: &Shared, generation: u64, job: *const (dyn Fn(usize) + Sync), parts: usize) {
    loop {
        let current = s.counter.load(Ordering::Acquire);
        let part = (current & 0xffff_ffff) as usize;
        if current >> 32 != generation || part >= parts {
            return;
        }
        if s.counter
            .compare_exchange(current, current + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue;
        }
        // Safety: the part was taken in the job's own generation, so its
        // caller is still waiting for it.
        unsafe { (*job)(part) };
        s.unfinished.fetch_sub(1, Ordering::AcqRel);
    }
}

fn helper(s: &Shared) {
    let mut seen = 0;
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        while s.generation.load(Ordering::Acquire) == seen {
            if s.stop.load(Ordering::Relaxed) {
                return;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 256 == 0 && start.elapsed() > SPIN {
                let mut state = s.state.lock().unwrap_or_else(|e| e.into_inner());
                s.sleeping.fetch_add(1, Ordering::AcqRel);
                while state.0 == seen && !s.stop.load(Ordering::Relaxed) {
                    state = s.wake.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                s.sleeping.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let (generation, job) = *s.state.lock().unwrap_or_else(|e| e.into_inner());
        seen = generation;
        work(s, generation, job.function, job.parts);
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        {
            let _state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for helper in self.helpers.drain(..) {
            let _ = helper.join();
        }
    }
}
