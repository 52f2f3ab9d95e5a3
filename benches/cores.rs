//! `cargo bench --bench cores`: how long one cache line takes to go from
//! one core to the other and back (two threads pinned to CPUs 0 and 1
//! passing a counter through an atomic, 200,000 round trips, the median of
//! five runs). On the 2-vCPU hosts the hypervisor moves the vCPUs: on the
//! Zen 5 VM a C program doing the same read 80–130 ns in some minutes and
//! 360–400 ns in others (this one reads about 60 ns in the near minutes
//! and about 380 ns in the far ones),
//! and steps that hand data between the threads run at two speeds
//! accordingly (`BENCHMARKS.md`, "Which core reads a weight"). Run it
//! beside a benchmark to label its minutes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A counter alone on its cache line.
#[repr(align(128))]
struct Line(AtomicU64);

const TRIPS: u64 = 200_000;

/// Keeps the calling thread on CPU `cpu` (Linux; elsewhere nothing).
fn pin(cpu: usize) {
    #[cfg(target_os = "linux")]
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

/// Nanoseconds per round trip: this thread (on CPU 0) writes odd numbers,
/// the other (on CPU 1) answers with the next even one.
fn round_trip() -> f64 {
    let line = Line(AtomicU64::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(1);
            for i in 0..TRIPS {
                while line.0.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                line.0.store(2 * i + 2, Ordering::Release);
            }
        });
        pin(0);
        let start = Instant::now();
        for i in 0..TRIPS {
            line.0.store(2 * i + 1, Ordering::Release);
            while line.0.load(Ordering::Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
        }
        start.elapsed().as_secs_f64() * 1e9 / TRIPS as f64
    })
}

fn main() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        println!("one CPU: no other core to reach");
        return;
    }
    let mut runs: Vec<f64> = (0..5).map(|_| round_trip()).collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "cache line between two cores: {:.0} ns a round trip (median of 5 runs: {:.0?})",
        runs[2], runs
    );
}
