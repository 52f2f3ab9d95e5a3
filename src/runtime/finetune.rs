//! Fine-tuning: a session and a checkpoint in, the session's parameters
//! that match the checkpoint by path and shape loaded, and a report of what
//! matched and what did not out ([`init_from`]); and the comparison a
//! fine-tuning lecture makes ([`compare_with_scratch`]): the same program
//! trained twice for the same steps, from the checkpoint and from random
//! initialization, with both results side by side.
//!
//! The checkpoint comes from `nnc run --init-from FILE` or from the file's
//! `train { init_from: "..." }` (a path relative to the `.nn` file). A
//! checkpoint none of whose tensors fits the model is an error: a run never
//! trains from scratch believing it fine-tunes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::run::{run, RunFailure, RunOptions, Summary};
use super::{checkpoint, rundir, Session};
use crate::check::Program;

/// What loading a checkpoint into a model found, by parameter path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matching {
    /// Loaded: in the file with the model's shape.
    pub matched: Vec<String>,
    /// In the file with another shape: path, shape in the file, in the model.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Parameters of the model the file does not have (kept initialized).
    pub missing: Vec<String>,
    /// Tensors of the file the model has no parameter for (optimizer
    /// slots aside).
    pub unused: Vec<String>,
}

impl Matching {
    /// One line: counts, then each group of paths.
    pub fn text(&self, file: &Path) -> String {
        let total = self.matched.len() + self.mismatched.len() + self.missing.len();
        let mut line = format!(
            "init from `{}`: {} of {total} parameters matched",
            file.display(),
            self.matched.len()
        );
        if !self.mismatched.is_empty() {
            let items: Vec<String> = self
                .mismatched
                .iter()
                .map(|(path, saved, _)| format!("{path} {saved:?}"))
                .collect();
            line += &format!("; shape differs: {}", items.join(", "));
        }
        if !self.missing.is_empty() {
            line += &format!("; not in the file (kept initialized): {}", self.missing.join(", "));
        }
        if !self.matched.is_empty() && (!self.mismatched.is_empty() || !self.missing.is_empty()) {
            line += &format!("; loaded: {}", group(&self.matched));
        }
        if !self.unused.is_empty() {
            line += &format!("; in the file but not in the model: {}", group(&self.unused));
        }
        line
    }

    pub fn to_json(&self, file: &Path) -> Value {
        json!({
            "event": "init",
            "file": file.display().to_string(),
            "matched": self.matched,
            "mismatched": self.mismatched.iter().map(|(p, saved, model)| json!({"path": p, "file_shape": saved, "model_shape": model})).collect::<Vec<_>>(),
            "missing": self.missing,
            "unused": self.unused,
        })
    }
}

/// Paths grouped by their first two components: `bert.bert_encoder.* (26)`,
/// a path alone when it is the only one of its group.
fn group(paths: &[String]) -> String {
    let mut groups: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for path in paths {
        let key: Vec<&str> = path.splitn(3, '.').take(2).collect();
        groups.entry(key.join(".")).or_default().push(path);
    }
    groups
        .into_iter()
        .map(|(prefix, members)| match members.as_slice() {
            [one] => (*one).clone(),
            _ => format!("{prefix}.* ({})", members.len()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compares the session's parameters with a checkpoint's tensors.
pub fn matching(session: &Session, saved: &BTreeMap<String, ndarray::ArrayD<f64>>) -> Matching {
    let mut out = Matching::default();
    for info in &session.program.params {
        let expected = session
            .tensors
            .get(&info.path)
            .map(|t| t.shape().to_vec())
            .unwrap_or_default();
        match saved.get(&info.path) {
            Some(value) if value.shape() == expected.as_slice() => out.matched.push(info.path.clone()),
            Some(value) => out
                .mismatched
                .push((info.path.clone(), value.shape().to_vec(), expected)),
            None => out.missing.push(info.path.clone()),
        }
    }
    let is_param = |name: &str| session.program.params.iter().any(|p| p.path == name);
    let is_state = |name: &str| session.program.states.iter().any(|p| p.path == name);
    out.unused = saved
        .keys()
        .filter(|name| !is_param(name) && !is_state(name) && !name.starts_with("optimizer."))
        .cloned()
        .collect();
    out
}

/// Loads the parameters of `file` that match the session's by path and
/// shape. Loading none is an error that lists both sides' paths.
pub fn init_from(session: &mut Session, file: &Path) -> Result<Matching, String> {
    let saved = checkpoint::load(file)?;
    let found = matching(session, &saved.tensors);
    if found.matched.is_empty() {
        let roots = |names: &mut dyn Iterator<Item = &String>| {
            let mut roots: Vec<String> = names.map(|n| n.split('.').next().unwrap_or("").to_string()).collect();
            roots.dedup();
            roots
        };
        let model_roots = roots(&mut session.program.params.iter().map(|p| &p.path));
        let file_roots = roots(&mut saved.tensors.keys().filter(|n| !n.starts_with("optimizer.")));
        let hint = if !file_roots.is_empty() && file_roots != model_roots {
            format!(
                " (the file's parameters start with `{}.`, the model's with `{}.`: parameters match by path, so name the model as the one that was trained)",
                file_roots.join("`, `"),
                model_roots.join("`, `")
            )
        } else {
            String::new()
        };
        return Err(format!(
            "{}; no parameter of the model was loaded, so the run would train from scratch{hint}",
            found.text(file)
        ));
    }
    for path in &found.matched {
        if let Some(value) = saved.tensors.get(path) {
            session.tensors.insert(path.clone(), value.clone());
        }
    }
    session.push();
    Ok(found)
}

/// The checkpoint a run starts from: `--init-from`, else the file's
/// `train { init_from }` relative to the file; none for a run from scratch.
pub fn checkpoint_of(path: &Path, program: &Program, options: &RunOptions) -> Option<PathBuf> {
    if options.scratch {
        return None;
    }
    options.init_from.clone().or_else(|| {
        let setting = program.sections.get("train")?.str("init_from")?;
        Some(path.parent().unwrap_or(Path::new("")).join(setting))
    })
}

/// Whether the file asks for the from-scratch comparison.
pub fn wants_comparison(program: &Program) -> bool {
    program
        .sections
        .get("train")
        .and_then(|t| t.bool("from_scratch"))
        .unwrap_or(false)
}

/// Trains the program twice for the same steps: from the checkpoint (in
/// `<out>/finetuned`) and from random initialization (`<out>/scratch`),
/// then prints their validation metrics side by side.
pub fn compare_with_scratch(
    path: &Path,
    text: &str,
    options: &RunOptions,
    check: impl Fn() -> Result<Program, String>,
) -> Result<Summary, RunFailure> {
    let base = match &options.out {
        Some(dir) => dir.clone(),
        None => rundir::fresh(path).map_err(RunFailure::Message)?,
    };
    let started = Instant::now();
    let mut results: Vec<(&str, Value)> = Vec::new();
    let mut curves = None;
    for (name, scratch) in [("finetuned", false), ("scratch", true)] {
        let program = check().map_err(RunFailure::Message)?;
        if !scratch && checkpoint_of(path, &program, options).is_none() {
            return Err(RunFailure::Message(
                "`train { from_scratch: true }` compares fine-tuning with training from scratch, but the run has no checkpoint to start from: give `init_from` or --init-from".into(),
            ));
        }
        let mut part = options.clone();
        part.out = Some(base.join(name));
        part.scratch = scratch;
        if options.json {
            println!("{}", json!({"event": "part", "part": name}));
        } else if !options.quiet {
            eprintln!(
                "{}",
                if scratch {
                    "\nthe same model from random initialization:"
                } else {
                    "fine-tuning from the checkpoint:"
                }
            );
        }
        let summary = run(path, program, text, &part)?;
        // Stopped by a signal (under `mpirun`, to any of the processes).
        if summary.event["event"] == "interrupted" {
            return Ok(summary);
        }
        // The fine-tuned run's curves stand for the pair.
        curves.get_or_insert(summary.curves);
        results.push((name, summary.event));
        // A report over both runs in `<out>/report.html`; a failure is a warning.
        if let Err(message) = super::report::compare::write_group_report(&base, super::report::compare::Group::Runs) {
            if !options.quiet && !options.json {
                eprintln!("warning: {message}");
            }
        }
    }
    let metrics = |i: usize| results[i].1["metrics"].as_object().cloned().unwrap_or_default();
    let (tuned, scratch) = (metrics(0), metrics(1));
    let steps = results[0].1["steps"].clone();
    if !options.json && !options.quiet {
        eprintln!("\n{}", comparison_table(&tuned, &scratch, steps.as_u64().unwrap_or(0)));
    }
    let event = json!({
        "event": "summary",
        "steps": steps,
        "finetuned": tuned,
        "scratch": scratch,
        "metrics": tuned,
        "val_loss": results[0].1["val_loss"],
        "scratch_val_loss": results[1].1["val_loss"],
        "wall_s": started.elapsed().as_secs_f64(),
        "out": base.display().to_string(),
    });
    Ok(Summary::of_group(options, base, event, curves.unwrap_or_default()))
}

/// The validation metrics of both runs, one row per metric.
pub fn comparison_table(tuned: &Map<String, Value>, scratch: &Map<String, Value>, steps: u64) -> String {
    let mut out = format!(
        "after {} steps (validation)   fine-tuned   from scratch\n",
        crate::check::group_thousands(steps as i64)
    );
    for (name, value) in tuned {
        let other = scratch.get(name).and_then(Value::as_f64).unwrap_or(f64::NAN);
        out += &format!(
            "  {name:<28} {:>10.4}   {other:>12.4}\n",
            value.as_f64().unwrap_or(f64::NAN)
        );
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_grouped_by_their_first_two_parts() {
        let paths: Vec<String> = ["bert.enc.a.w", "bert.enc.b.w", "bert.linear.w", "other"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(group(&paths), "bert.enc.* (2), bert.linear.w, other");
    }

    #[test]
    fn the_table_puts_both_runs_side_by_side() {
        let tuned: Map<String, Value> = [("accuracy".to_string(), json!(0.9))].into_iter().collect();
        let scratch: Map<String, Value> = [("accuracy".to_string(), json!(0.5))].into_iter().collect();
        let table = comparison_table(&tuned, &scratch, 1500);
        assert_eq!(
            table,
            "after 1,500 steps (validation)   fine-tuned   from scratch\n  accuracy                         0.9000         0.5000"
        );
    }
}
