//! Run directories: a path (`--out`, `--resume`, or a fresh
//! `runs/<file>-<time>`) in; out, a [`RunDir`] this process alone writes,
//! or a refusal that says why. A directory that already holds a run
//! (`checkpoint.safetensors` or `metrics.jsonl`) is never written over
//! unless asked (`--overwrite`); the refusal says what is there and how
//! to continue it (`--resume`). A lock file (`.lock`, holding the pid, the
//! command and the start time, under an advisory `flock`) keeps two
//! processes out of one directory; the kernel drops the `flock` when its
//! process dies, so a lock left by a killed run is recognised as stale,
//! reported and taken over.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::checkpoint;
use super::report::record;

/// The files of a run that `--overwrite` replaces.
const RUN_FILES: [&str; 4] = [
    checkpoint::FILE,
    "checkpoint.safetensors.tmp",
    record::EVENTS_FILE,
    "loss.svg",
];

/// The lock file's name.
pub const LOCK: &str = ".lock";

/// What the run means to do with its directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Start a run; the directory must not hold one.
    New,
    /// Start a run, replacing the one the directory holds.
    Overwrite,
    /// Continue the run the directory holds.
    Resume,
}

/// A run directory held by this process; dropping it releases the lock
/// (and removes the directory if this process made it and left it empty).
#[derive(Debug)]
pub struct RunDir {
    pub path: PathBuf,
    lock: Option<File>,
    created: bool,
    /// Things to tell the user (a stale lock that was cleared).
    pub notes: Vec<String>,
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Some(file) = self.lock.take() {
            // Unlink while still holding the lock: a process waiting on the
            // old file sees it is no longer the directory's lock.
            let _ = std::fs::remove_file(self.path.join(LOCK));
            drop(file);
        }
        if self.created {
            // Only succeeds if nothing was written.
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

/// A UTC date and time: `20261125-101500` for names (`compact`), or
/// `2026-11-25 10:15:00 UTC`.
pub fn utc(seconds: i64, compact: bool) -> String {
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rest / 3600, rest / 60 % 60, rest % 60);
    if compact {
        format!("{year:04}{month:02}{day:02}-{h:02}{m:02}{s:02}")
    } else {
        format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A new directory `runs/<file>-<time>` (then `-2`, `-3`, ... if a run
/// started in the same second took it), created here so no other run
/// can have it.
pub fn fresh(file: &Path) -> Result<PathBuf, String> {
    fresh_in(Path::new("runs"), file)
}

/// [`fresh`] under `runs`.
pub fn fresh_in(runs: &Path, file: &Path) -> Result<PathBuf, String> {
    let stem = file
        .file_stem()
        .map_or("run".into(), |s| s.to_string_lossy().into_owned());
    let base = format!("{stem}-{}", utc(now(), true));
    std::fs::create_dir_all(runs).map_err(|e| format!("cannot create `{}`: {e}", runs.display()))?;
    for n in 1.. {
        let path = match n {
            1 => runs.join(&base),
            n => runs.join(format!("{base}-{n}")),
        };
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create `{}`: {e}", path.display())),
        }
    }
    unreachable!("some suffix is free")
}

/// Claims a [`fresh`] directory for a new run (removed again if the run
/// writes nothing to it).
pub fn claim_fresh(file: &Path) -> Result<RunDir, String> {
    let path = fresh(file)?;
    match claim(&path, Intent::New) {
        Ok(mut dir) => {
            dir.created = true;
            Ok(dir)
        }
        Err(message) => {
            let _ = std::fs::remove_dir(&path);
            Err(message)
        }
    }
}

/// Takes `path` for a run: creates it if needed, locks it, and checks
/// (under the lock) that it holds no run unless `intent` says what to do
/// with one.
pub fn claim(path: &Path, intent: Intent) -> Result<RunDir, String> {
    let shown = path.display();
    if intent == Intent::Resume && !path.join(checkpoint::FILE).exists() {
        return Err(format!(
            "`{shown}` holds no checkpoint to resume (`{shown}/checkpoint.safetensors` is missing)"
        ));
    }
    if path.exists() && !path.is_dir() {
        return Err(format!("`{shown}` is a file, not a run directory"));
    }
    let created = match std::fs::create_dir(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(_) => {
            std::fs::create_dir_all(path).map_err(|e| format!("cannot create `{shown}`: {e}"))?;
            true
        }
    };
    let mut dir = RunDir {
        path: path.to_path_buf(),
        lock: None,
        created,
        notes: Vec::new(),
    };
    let (file, previous) = lock(path)?;
    dir.lock = Some(file);
    if let Some(previous) = previous {
        dir.notes.push(format!(
            "note: `{shown}` had a lock left by {previous}, which is no longer running; it was cleared"
        ));
    }
    match intent {
        Intent::New => {
            if let Some((what, file)) = describe(path) {
                let file = file.unwrap_or_else(|| "FILE".into());
                return Err(format!(
                    "`{shown}` already holds a run: {what}. Nothing was changed.\n  \
                     to continue it: nnc run {file} --resume {shown}\n  \
                     to keep it: choose another --out DIR, or omit --out for a new directory under runs/\n  \
                     to replace it: add --overwrite"
                ));
            }
        }
        Intent::Overwrite => {
            for name in RUN_FILES {
                match std::fs::remove_file(path.join(name)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("cannot remove `{shown}/{name}`: {e}")),
                }
            }
        }
        Intent::Resume => {}
    }
    Ok(dir)
}

/// Locks `dir/.lock` for this process; returns the lock and, if the file
/// named a process that died holding it, that process.
fn lock(dir: &Path) -> Result<(File, Option<String>), String> {
    let path = dir.join(LOCK);
    for _ in 0..16 {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot create the lock `{}`: {e}", path.display()))?;
        // Safety: flock on a descriptor this function owns.
        let status = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        if status != 0 {
            let holder = holder_text(&text).unwrap_or_else(|| "another process".into());
            return Err(format!(
                "`{}` is in use: {holder} is writing to it. Wait for it to finish, or choose another --out DIR",
                dir.display()
            ));
        }
        // The holder before us may have removed the file as we opened it:
        // then this lock guards nothing; take the new file's.
        let same = match (file.metadata(), std::fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
            continue;
        }
        let previous = holder_text(&text);
        let command: Vec<String> = std::env::args().collect();
        let record = format!("{}\n{}\n{}\n", std::process::id(), now(), command.join(" "));
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(record.as_bytes()))
            .map_err(|e| format!("cannot write the lock `{}`: {e}", path.display()))?;
        return Ok((file, previous));
    }
    Err(format!("cannot lock `{}`: it keeps changing", dir.display()))
}

/// "process 1234 (`nnc run ...`, since 2026-12-01 20:54:00 UTC)" from a
/// lock file's text; `None` if it is empty.
fn holder_text(text: &str) -> Option<String> {
    let mut lines = text.lines();
    let pid = lines.next()?.trim();
    if pid.is_empty() {
        return None;
    }
    let since = lines.next().and_then(|t| t.trim().parse::<i64>().ok());
    let command = lines.next().unwrap_or("").trim();
    let mut out = format!("process {pid}");
    match (command.is_empty(), since) {
        (false, Some(t)) => out += &format!(" (`{command}`, since {})", utc(t, false)),
        (true, Some(t)) => out += &format!(" (since {})", utc(t, false)),
        (false, None) => out += &format!(" (`{command}`)"),
        (true, None) => {}
    }
    Some(out)
}

/// What the run in `dir` is, if it holds one: its file, step and date;
/// and the program it ran, if its log says.
pub fn describe(dir: &Path) -> Option<(String, Option<String>)> {
    let checkpoint = dir.join(checkpoint::FILE);
    let log = dir.join(record::EVENTS_FILE);
    if !checkpoint.exists() && !log.exists() {
        return None;
    }
    let mut parts = Vec::new();
    let mut program = None;
    let mut last_step = None;
    let mut events = 0;
    if let Ok(text) = std::fs::read_to_string(&log) {
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            events += 1;
            if event["event"] == "start" && program.is_none() {
                program = event["file"].as_str().map(str::to_string);
            }
            if let Some(step) = event["step"].as_u64() {
                last_step = Some(step);
            }
        }
    }
    if let Some(file) = &program {
        parts.push(format!("a run of `{file}`"));
    }
    if checkpoint.exists() {
        let step = checkpoint_step(&checkpoint).map_or("an unknown step".into(), |s| format!("step {s}"));
        parts.push(format!("checkpoint.safetensors at {step}{}", written(&checkpoint)));
    }
    if log.exists() {
        let last = last_step.map_or(String::new(), |s| format!(", up to step {s}"));
        parts.push(format!("metrics.jsonl with {events} events{last}{}", written(&log)));
    }
    Some((parts.join("; "), program))
}

/// " (written 2026-12-01 20:54:00 UTC)" from a file's modification time.
fn written(path: &Path) -> String {
    std::fs::metadata(path)
        .map(|m| format!(" (written {})", utc(m.mtime(), false)))
        .unwrap_or_default()
}

/// The step in a checkpoint's header, without reading its tensors.
fn checkpoint_step(path: &Path) -> Option<u64> {
    let mut file = File::open(path).ok()?;
    let mut size = [0u8; 8];
    file.read_exact(&mut size).ok()?;
    let size = u64::from_le_bytes(size);
    if size > 100_000_000 {
        return None;
    }
    let mut header = vec![0u8; size as usize];
    file.read_exact(&mut header).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    header["__metadata__"]["step"].as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(utc(0, false), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_764_622_440, true), "20251201-205400");
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nnc-rundir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Runs started in the same second get directories of their own.
    #[test]
    fn default_directories_never_collide() {
        let runs = scratch("fresh");
        let file = Path::new("examples/digits_mlp.nn");
        let made: Vec<PathBuf> = (0..3).map(|_| fresh_in(&runs, file).unwrap()).collect();
        assert!(made.iter().all(|p| p.is_dir()), "{made:?}");
        assert_ne!(made[0], made[1]);
        assert_ne!(made[1], made[2]);
        assert_ne!(made[0], made[2]);
        std::fs::remove_dir_all(runs).unwrap();
    }

    /// One claim at a time: a second is refused while the first holds the
    /// lock (even in one process: `flock` belongs to the open file), and
    /// allowed once it is dropped; a claim made for nothing leaves nothing.
    #[test]
    fn a_directory_has_one_writer() {
        let dir = scratch("lock");
        let first = claim(&dir, Intent::New).unwrap();
        let lock = std::fs::read_to_string(dir.join(LOCK)).unwrap();
        assert_eq!(lock.lines().next().unwrap(), std::process::id().to_string());
        let refused = claim(&dir, Intent::Overwrite).unwrap_err();
        assert!(
            refused.contains("is in use") && refused.contains(&format!("process {}", std::process::id())),
            "{refused}"
        );
        drop(first);
        assert!(!dir.exists(), "an unused directory made by the claim stays behind");
        let second = claim(&dir, Intent::New).unwrap();
        assert!(second.notes.is_empty(), "{:?}", second.notes);
        drop(second);
    }

    /// A lock file whose process died is reported and taken over.
    #[test]
    fn a_stale_lock_is_cleared() {
        let dir = scratch("stale");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(LOCK), "999999999\n0\nnnc run gone.nn\n").unwrap();
        let taken = claim(&dir, Intent::New).unwrap();
        assert_eq!(taken.notes.len(), 1);
        assert!(
            taken.notes[0].contains("process 999999999") && taken.notes[0].contains("cleared"),
            "{:?}",
            taken.notes
        );
        drop(taken);
        assert!(!dir.join(LOCK).exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_lock_names_its_holder() {
        assert_eq!(holder_text(""), None);
        assert_eq!(
            holder_text("42\n0\nnnc run a.nn\n").unwrap(),
            "process 42 (`nnc run a.nn`, since 1970-01-01 00:00:00 UTC)"
        );
    }
}
