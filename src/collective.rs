//! The processes of a data-parallel run, as the step graph's `all_reduce`
//! sees them: one trait that sums a buffer over every process and leaves
//! the sum in each. The runtime makes one under `mpirun`
//! (`runtime/distributed.rs`); the interpreter and the compiled step call
//! it where the graph sums its gradients; one process needs none.

use std::sync::Arc;

/// Sums over the processes of a run, in place: after the call every
/// process holds the same sum. Every process must call it the same number
/// of times with buffers of the same lengths (the step graphs are equal).
pub trait Collective: Send + Sync {
    /// How many processes take part.
    fn size(&self) -> usize;
    /// This process's number, `0..size()`.
    fn rank(&self) -> usize;
    fn sum_f32(&self, values: &mut [f32]);
    fn sum_f64(&self, values: &mut [f64]);
}

/// A shared handle, as compile options and interpreter environments hold
/// it (and print it).
#[derive(Clone)]
pub struct Handle(pub Arc<dyn Collective>);

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Collective {{ rank: {}, size: {} }}", self.0.rank(), self.0.size())
    }
}

/// Processes simulated by threads of one process: each thread holds one
/// member ([`Threads::team`]) and trains its own session, as `mpirun`'s
/// processes would, and the sums are the same numbers MPI gives up to
/// their order (here the members' order, so every member gets the same
/// bits). For tests of data parallelism without launching processes.
pub struct Threads {
    rank: usize,
    shared: Arc<Meeting>,
}

struct Meeting {
    size: usize,
    barrier: std::sync::Barrier,
    /// Each member's buffer of the current sum, by rank.
    buffers: std::sync::Mutex<Vec<Vec<f64>>>,
}

impl Threads {
    /// The members of a team of `size`, one for each thread.
    pub fn team(size: usize) -> Vec<Threads> {
        let shared = Arc::new(Meeting {
            size,
            barrier: std::sync::Barrier::new(size),
            buffers: std::sync::Mutex::new(vec![Vec::new(); size]),
        });
        (0..size)
            .map(|rank| Threads {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }

    fn sum(&self, values: &mut [f64]) {
        let meeting = &self.shared;
        meeting.buffers.lock().expect("no member panicked")[self.rank] = values.to_vec();
        meeting.barrier.wait();
        {
            let buffers = meeting.buffers.lock().expect("no member panicked");
            for (i, value) in values.iter_mut().enumerate() {
                *value = buffers.iter().map(|b| b[i]).sum();
            }
        }
        // Nobody writes the next sum's buffer before everyone has read this one.
        meeting.barrier.wait();
    }
}

impl Collective for Threads {
    fn size(&self) -> usize {
        self.shared.size
    }

    fn rank(&self) -> usize {
        self.rank
    }

    fn sum_f32(&self, values: &mut [f32]) {
        let mut wide: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        self.sum(&mut wide);
        for (v, w) in values.iter_mut().zip(wide) {
            *v = w as f32;
        }
    }

    fn sum_f64(&self, values: &mut [f64]) {
        self.sum(values);
    }
}
