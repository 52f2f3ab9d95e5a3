//! A run directory read back: `run.json` (what ran: the file, its source
//! and hash, the command, the host, the model's summary) and
//! `metrics.jsonl` (every event) in, a [`RunRecord`] out — the one input of
//! every report, during a run and after it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::runtime::Session;

/// The file that says what ran, written when a run starts.
pub const INFO_FILE: &str = "run.json";
/// The events of a run, one JSON object per line.
pub const EVENTS_FILE: &str = "metrics.jsonl";

/// A training-step event: the loss of that step, the learning rate and the
/// speed so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepPoint {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub steps_per_s: f64,
}

/// Everything a report shows about one run.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub dir: PathBuf,
    /// `run.json`, or `Null` for runs written before it existed.
    pub info: Value,
    /// By step, the last value written for each step (a resumed run
    /// repeats none, but an interrupted one may have been cut mid-way).
    pub steps: Vec<StepPoint>,
    /// Validation metrics by step.
    pub evals: Vec<(u64, BTreeMap<String, f64>)>,
    /// Generated samples of the last invocation.
    pub samples: Vec<String>,
    /// The `summary` event, when the run has finished.
    pub summary: Option<Value>,
    /// The step at which the last invocation was interrupted, if it was.
    pub interrupted: Option<u64>,
}

impl RunRecord {
    /// The directory's name, which names the run (or the sweep variant).
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map_or_else(|| self.dir.display().to_string(), |n| n.to_string_lossy().into_owned())
    }

    /// The last step any event reports.
    pub fn last_step(&self) -> u64 {
        let step = self.steps.last().map_or(0, |p| p.step);
        let eval = self.evals.last().map_or(0, |(s, _)| *s);
        step.max(eval)
    }

    /// The validation metrics at the end (or the latest evaluation).
    pub fn final_metrics(&self) -> BTreeMap<String, f64> {
        self.evals.last().map(|(_, m)| m.clone()).unwrap_or_default()
    }

    /// Every validation metric's name, `loss` first.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (_, metrics) in &self.evals {
            for name in metrics.keys() {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        names.sort_by_key(|n| (n != "loss", n.clone()));
        names
    }
}

/// Whether `dir` holds a run (its `metrics.jsonl`).
pub fn is_run(dir: &Path) -> bool {
    dir.join(EVENTS_FILE).is_file()
}

/// The runs directly inside `dir` (the variants of a sweep, the folds of a
/// cross-validation), sorted by name with numbers in order (`H=8` before
/// `H=32`, `fold-2` before `fold-10`), as a sweep runs them.
pub fn child_runs(dir: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| is_run(path))
        .collect();
    runs.sort_by_cached_key(|path| natural_key(&path.file_name().unwrap_or_default().to_string_lossy()));
    runs
}

/// A sort key that orders the numbers inside names by value (numbers are
/// never negative here, a `-` before digits being text, so the bits of an
/// f64 order as its value).
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let text_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let (text, tail) = rest.split_at(text_end);
        let number_end = tail
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-'))
            .unwrap_or(tail.len());
        let (number, tail) = tail.split_at(number_end);
        let value = number.parse::<f64>().unwrap_or(0.0);
        key.push((text.to_string(), value.to_bits()));
        rest = tail;
    }
    key
}

/// Reads a run directory. Lines that are not JSON (the last line of a
/// killed run may be cut) are skipped.
pub fn load(dir: &Path) -> Result<RunRecord, String> {
    if !dir.is_dir() {
        return Err(format!("`{}` is not a directory", dir.display()));
    }
    let events = std::fs::read_to_string(dir.join(EVENTS_FILE)).map_err(|e| {
        format!(
            "`{}` is not a run directory: cannot read its {EVENTS_FILE} ({e})",
            dir.display()
        )
    })?;
    let info = std::fs::read_to_string(dir.join(INFO_FILE))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    let mut record = RunRecord {
        dir: dir.to_path_buf(),
        info,
        steps: Vec::new(),
        evals: Vec::new(),
        samples: Vec::new(),
        summary: None,
        interrupted: None,
    };
    for line in events.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let step = event["step"].as_u64();
        match event["event"].as_str() {
            Some("start") => {
                record.samples.clear();
                record.summary = None;
                record.interrupted = None;
            }
            Some("step") => {
                if let Some(step) = step {
                    let number = |key: &str| event[key].as_f64().unwrap_or(f64::NAN);
                    record.steps.push(StepPoint {
                        step,
                        loss: number("loss"),
                        lr: number("lr"),
                        steps_per_s: number("steps_per_s"),
                    });
                }
            }
            Some("eval") => {
                if let (Some(step), Some(metrics)) = (step, event["metrics"].as_object()) {
                    let metrics = metrics
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(f64::NAN)))
                        .collect();
                    record.evals.push((step, metrics));
                }
            }
            Some("sample") => {
                let prompt = event["prompt"].as_str().unwrap_or("");
                // A continuation among several methods' is headed by its method.
                let title = event["title"].as_str().map_or(String::new(), |t| format!("{t}:\n"));
                record
                    .samples
                    .push(format!("{title}{prompt}{}", event["text"].as_str().unwrap_or("")));
            }
            Some("summary") => record.summary = Some(event),
            Some("interrupted") => record.interrupted = step,
            _ => {}
        }
    }
    keep_last_per_step(&mut record.steps, |p| p.step);
    keep_last_per_step(&mut record.evals, |(s, _)| *s);
    Ok(record)
}

/// Sorts by step and keeps the last entry written for each step.
fn keep_last_per_step<T>(items: &mut Vec<T>, step: impl Fn(&T) -> u64) {
    let mut indexed: Vec<(usize, T)> = items.drain(..).enumerate().collect();
    indexed.sort_by_key(|(i, item)| (step(item), std::cmp::Reverse(*i)));
    indexed.dedup_by(|b, a| step(&a.1) == step(&b.1));
    items.extend(indexed.into_iter().map(|(_, item)| item));
}

/// The command line of this process, quoted where a word needs it.
pub fn command_line() -> String {
    let words: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, word)| {
            let word = if i == 0 {
                Path::new(&word)
                    .file_name()
                    .map_or(word.clone(), |n| n.to_string_lossy().into_owned())
            } else {
                word
            };
            shell_word(&word)
        })
        .collect();
    words.join(" ")
}

/// `word` as a shell reads it back: as it is if it is plain, else in
/// single quotes.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// A UTC time as `2026-11-25 13:04:12 UTC`.
pub fn utc_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    crate::runtime::rundir::utc(seconds, false)
}

/// What `run.json` holds: the file, its source and SHA-256, the command,
/// the host, the settings, and the model's summary — its parameters by
/// tensor, the floating-point operations of one step and the memory plan.
pub fn info(path: &Path, text: &str, session: &Session) -> Value {
    let program = &session.program;
    let tensors = |infos: &[crate::check::ParamInfo]| -> Vec<Value> {
        infos
            .iter()
            .map(|p| {
                json!({
                    "path": p.path,
                    "type": p.ty.to_string(),
                    "count": p.ty.num_elements().unwrap_or(0),
                })
            })
            .collect()
    };
    let dims = std::collections::HashMap::from([(crate::check::data::BATCH.to_string(), session.batch as i64)]);
    // The compiled step's plan, or a plan made for the record (on the
    // interpreter).
    let memory = match session
        .step_memory()
        .map_or_else(|| crate::codegen::memory_plan(&session.step_graph, &dims), Ok)
    {
        Ok(plan) => json!({
            "persistent_bytes": plan.persistent_bytes,
            "peak_bytes": plan.peak_bytes,
            "unshared_bytes": plan.unshared_bytes,
        }),
        Err(message) => json!({"error": message}),
    };
    let signature = program.model.as_ref().map(|model| {
        let inputs: Vec<String> = model.inputs.iter().map(|(n, t)| format!("{n}: {t}")).collect();
        format!("model {}({}) -> {}", model.name, inputs.join(", "), model.output)
    });
    json!({
        "file": path.display().to_string(),
        "sha256": crate::runtime::checkpoint::hash_text(text),
        "source": text,
        "command": command_line(),
        "cwd": std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
        "host": gethostname::gethostname().to_string_lossy(),
        "started": utc_now(),
        "backend": session.backend.name(),
        // The whole batch (each of a data-parallel run's processes trains
        // on its share).
        "batch": session.batch * session.place().1,
        "seed": session.seed,
        "steps": session.total_steps,
        "lr": session.lr,
        "nnc": env!("CARGO_PKG_VERSION"),
        "model": {
            "signature": signature,
            "parameters": program.param_count(),
            "params": tensors(&program.params),
            "states": tensors(&program.states),
            "flops_per_step": super::super::analyze::flops(&session.step_graph, session.batch as i64),
            "memory": memory,
        },
    })
}

/// Writes `run.json` into the run directory, whole or not at all (another
/// process may read it meanwhile: `--resume` under `mpirun`).
pub fn write_info(dir: &Path, info: &Value) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(info).unwrap_or_default();
    let temporary = dir.join(format!("{INFO_FILE}.tmp"));
    std::fs::write(&temporary, text + "\n")?;
    std::fs::rename(&temporary, dir.join(INFO_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_names_sort_by_value() {
        let mut names = [
            "H=32,lr=0.01",
            "H=8,lr=0.01",
            "H=32,lr=0.001",
            "H=8,lr=0.001",
            "fold-10",
            "fold-2",
        ];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(
            names,
            [
                "H=8,lr=0.001",
                "H=8,lr=0.01",
                "H=32,lr=0.001",
                "H=32,lr=0.01",
                "fold-2",
                "fold-10"
            ]
        );
    }

    #[test]
    fn the_last_value_of_a_step_wins_and_steps_are_sorted() {
        let mut items = vec![(3, 'a'), (1, 'b'), (3, 'c'), (2, 'd'), (1, 'e')];
        keep_last_per_step(&mut items, |(s, _)| *s);
        assert_eq!(items, [(1, 'e'), (2, 'd'), (3, 'c')]);
    }
}
