//! Memory, before anything of the step's size is allocated: a loaded
//! [`Session`] (data, graphs and tensors, no native code yet) in; out, the
//! bytes its run will hold — the training step's arena, the evaluation and
//! generation graphs' arenas, the host's copy of the tensors, the loaded
//! data and one batch on the host — and whether that fits in what the
//! machine has (`MemAvailable`, the cgroup's limit, `ulimit -v`) and in
//! `--memory-limit`. A run that does not fit is refused with the figures
//! and the largest batch that would fit.
//!
//! Also the step's plan as a report ([`report`]): its peak and the largest
//! buffers live at the peak, each named by the parameter or slot it is, or
//! by the line of the user's file that made it (`Graph::origins`; values
//! of the backward pass by the line of the forward values they are
//! computed from), for `analyze { report: [memory] }` and `nnc check
//! --memory`.

use std::collections::HashMap;
use std::fmt::Write;

use super::data::Split;
use super::generate::Method;
use super::{Backend, Session};
use crate::check::data::BATCH;
use crate::check::group_thousands;
use crate::codegen::memory::Role;
use crate::codegen::Planned;
use crate::ir::{Graph, NodeId};
use crate::prim::Prim;

/// The planned bytes of a run, by part.
#[derive(Clone, Debug)]
pub struct Estimate {
    pub batch: usize,
    pub parts: Vec<(&'static str, u64)>,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.parts.iter().map(|(_, b)| b).sum()
    }

    /// `{"total": .., "<part>": ..}` for the JSON `start` event.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("total".into(), self.total().into());
        for (name, bytes) in &self.parts {
            map.insert((*name).into(), (*bytes).into());
        }
        serde_json::Value::Object(map)
    }
}

/// Examples of the validation split that evaluation covers (streams of
/// text: the first 2,048 windows).
pub fn eval_limit(session: &Session) -> usize {
    match session.data.first().map(|d| &d.val) {
        Some(Split::Stream { .. }) => 2048,
        _ => usize::MAX,
    }
}

/// The batch sizes the evaluation graph will be compiled for at training
/// batch `batch`: full batches and the remainder of the validation split,
/// and the fixed sizes of generation.
fn eval_sizes(session: &Session, batch: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let Some(data) = session.data.first() else {
        return sizes;
    };
    let n = data.val.len().min(eval_limit(session));
    if n > 0 {
        sizes.push(n.min(batch));
        if n > batch && n % batch != 0 {
            sizes.push(n % batch);
        }
    }
    let generate = session.program.sections.get("generate");
    // Each listed method decodes at its own fixed batch size.
    for width in Method::all(generate).iter().map(Method::width) {
        match &data.val {
            Split::Stream { .. } if generate.is_some() => sizes.push(width),
            Split::Table { fields, .. } if fields.iter().any(|(n, _)| n == "tgt_out") => {
                sizes.push((64 / width).max(1) * width);
            }
            _ => {}
        }
    }
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// Bytes of one run of `graph` at batch `batch`: the JIT's arena, or on
/// the interpreter every value of the run in f64.
fn graph_bytes(graph: &Graph, batch: usize, backend: Backend) -> Result<u64, String> {
    let dims = HashMap::from([(BATCH.to_string(), batch as i64)]);
    match backend {
        Backend::Jit => Ok(Planned::new(graph, &dims)?.arena_bytes() as u64),
        Backend::Interp => {
            let mut total = 0u64;
            for id in graph.topo_order() {
                let shape = crate::interp::eval_shape(&graph.node(id).shape, &dims).map_err(|e| e.message)?;
                total += 8 * shape.iter().product::<usize>() as u64;
            }
            Ok(total)
        }
    }
}

/// Bytes of the inputs of `graph` (the batch, as the host builds it in
/// f64) at batch `batch`.
fn input_bytes(graph: &Graph, batch: usize) -> u64 {
    let dims = HashMap::from([(BATCH.to_string(), batch as i64)]);
    graph
        .leaves(crate::ir::input_name)
        .into_iter()
        .filter_map(|(_, id)| crate::interp::eval_shape(&graph.node(id).shape, &dims).ok())
        .map(|shape| 8 * shape.iter().product::<usize>() as u64)
        .sum()
}

fn split_bytes(split: &Split) -> u64 {
    match split {
        Split::Table { fields, .. } => fields.iter().map(|(_, a)| 8 * a.len() as u64).sum(),
        Split::Stream { ids, .. } => 4 * ids.len() as u64,
    }
}

/// The planned bytes of `session`'s run at batch `batch`.
pub fn estimate(session: &Session, batch: usize) -> Result<Estimate, String> {
    let step = graph_bytes(&session.step_graph, batch, session.backend)?;
    estimate_with_step(session, batch, step)
}

/// [`estimate`] with the step's bytes already known (from the plan the
/// JIT then compiles, so the step is planned once).
pub fn estimate_with_step(session: &Session, batch: usize, step: u64) -> Result<Estimate, String> {
    let mut eval = 0;
    let mut eval_batch = 0;
    for size in eval_sizes(session, batch) {
        eval += graph_bytes(&session.eval_graph, size, session.backend)?;
        eval_batch = eval_batch.max(input_bytes(&session.eval_graph, size));
    }
    let tensors: u64 = session.tensors.values().map(|t| 8 * t.len() as u64).sum();
    let data: u64 = session
        .data
        .iter()
        .map(|d| split_bytes(&d.train) + split_bytes(&d.val))
        .sum();
    let batch_bytes = input_bytes(&session.step_graph, batch) + eval_batch;
    Ok(Estimate {
        batch,
        parts: vec![
            ("step", step),
            ("evaluation", eval),
            ("tensors", tensors),
            ("data", data),
            ("batch", batch_bytes),
        ],
    })
}

/// What a part is, for people.
fn part_label(name: &str) -> &'static str {
    match name {
        "step" => "the training step",
        "evaluation" => "evaluation and generation",
        "tensors" => "the host's copy of the parameters and optimizer slots",
        "data" => "the data",
        _ => "one batch on the host",
    }
}

/// The memory a run may use and what says so.
#[derive(Clone, Debug)]
pub struct Available {
    pub bytes: u64,
    pub source: String,
}

fn proc_field(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let number: u64 = line[field.len()..].split_whitespace().next()?.parse().ok()?;
    Some(number * 1024)
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Resident memory of this process now (`VmRSS`).
pub fn resident() -> Option<u64> {
    proc_field("/proc/self/status", "VmRSS:")
}

/// The most resident memory this process has had (`VmHWM`).
pub fn peak_resident() -> Option<u64> {
    proc_field("/proc/self/status", "VmHWM:")
}

/// The memory this process can still have: the least of the machine's
/// available memory, the room under the cgroup's limit, the room under
/// the address-space limit (`ulimit -v`), and `limit` (`--memory-limit`,
/// for the whole run).
pub fn available(limit: Option<u64>) -> Option<Available> {
    let mut candidates: Vec<(u64, String)> = Vec::new();
    if let Some(bytes) = proc_field("/proc/meminfo", "MemAvailable:") {
        candidates.push((bytes, "available on this machine (MemAvailable)".into()));
    }
    let cgroups = [
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ];
    for (max, current) in cgroups {
        if let Some(max) = read_number(max) {
            let used = read_number(current).unwrap_or(0);
            candidates.push((max.saturating_sub(used), "left under the cgroup's memory limit".into()));
            break;
        }
    }
    if let Some(soft) = address_space_limit() {
        let used = proc_field("/proc/self/status", "VmSize:").unwrap_or(0);
        candidates.push((
            soft.saturating_sub(used),
            "left under the address-space limit (ulimit -v)".into(),
        ));
    }
    if let Some(limit) = limit {
        let used = resident().unwrap_or(0);
        candidates.push((
            limit.saturating_sub(used),
            format!("left under --memory-limit {}", bytes_text(limit)),
        ));
    }
    candidates
        .into_iter()
        .min_by_key(|(bytes, _)| *bytes)
        .map(|(bytes, source)| Available { bytes, source })
}

/// The soft `RLIMIT_AS`, if set.
fn address_space_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max address space"))?;
    line["Max address space".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Bytes for people: `512 B`, `3.4 KiB`, `135 GiB`.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// Parses `--memory-limit`: bytes, or a number with K, M, G or T (powers
/// of 1024; `GiB`, `GB` and `g` are read alike).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 8G, 512M)"))?;
    let scale: u64 = match unit
        .trim()
        .to_ascii_lowercase()
        .trim_end_matches("ib")
        .trim_end_matches('b')
    {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(format!("`{text}` is not a size (e.g. 8G, 512M)")),
    };
    let bytes = number * scale as f64;
    if !(bytes.is_finite() && bytes >= 1.0) {
        return Err(format!("`{text}` is not a positive size"));
    }
    Ok(bytes as u64)
}

/// Refuses a run whose plan does not fit: the figures, the part that
/// dominates, and the largest batch that would fit.
pub fn check(session: &Session, estimate: &Estimate, limit: Option<u64>) -> Result<(), String> {
    let Some(available) = available(limit) else {
        return Ok(());
    };
    let total = estimate.total();
    if total <= available.bytes {
        return Ok(());
    }
    let mut parts = estimate.parts.clone();
    parts.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
    let listed: Vec<String> = parts
        .iter()
        .filter(|(_, bytes)| *bytes > 0)
        .take(3)
        .map(|(name, bytes)| format!("{} {}", part_label(name), bytes_text(*bytes)))
        .collect();
    let mut message = format!(
        "this run needs {} of memory at batch {} ({}); {} is {}",
        bytes_text(total),
        group_thousands(estimate.batch as i64),
        listed.join(", "),
        bytes_text(available.bytes),
        available.source
    );
    match largest_batch(session, estimate, available.bytes) {
        Some(fits) => {
            let _ = write!(
                message,
                "; the largest batch that fits is about {} (try --batch {fits})",
                group_thousands(fits as i64)
            );
        }
        None => {
            let _ = write!(
                message,
                "; even a batch of 1 does not fit: make the model smaller (fewer or narrower layers)"
            );
        }
    }
    Err(message)
}

/// Checks, before anything of the model's size is allocated, that the
/// host's `f64` copy of the step's persistent tensors (parameters, model
/// states, optimizer slots) fits in what the machine has: a model far too
/// large for the machine fails at once, not after minutes of allocating.
pub fn check_tensors(step: &Graph, limit: Option<u64>) -> Result<(), String> {
    let mut values: u64 = 0;
    let persistent = step
        .leaves(crate::ir::param_name)
        .into_iter()
        .chain(step.leaves(crate::ir::state_name));
    for (_, id) in persistent {
        let count = step.node(id).shape.iter().try_fold(1u64, |count, dim| {
            count.checked_mul(u64::try_from(dim.as_const()?).ok()?)
        });
        values = values.saturating_add(count.unwrap_or(u64::MAX));
    }
    let bytes = values.saturating_mul(8);
    let Some(available) = available(limit) else {
        return Ok(());
    };
    if bytes <= available.bytes {
        return Ok(());
    }
    Err(format!(
        "the model's parameters, states and optimizer slots ({} values) need {} on the host alone; {} is {}: make the model smaller (fewer or narrower layers)",
        group_thousands(values.min(i64::MAX as u64) as i64),
        bytes_text(bytes),
        bytes_text(available.bytes),
        available.source
    ))
}

/// The largest batch whose plan fits in `room`, from the plan at batch 1
/// and at the requested batch (memory grows about linearly with the batch).
fn largest_batch(session: &Session, at: &Estimate, room: u64) -> Option<usize> {
    let one = estimate(session, 1).ok()?;
    if one.total() > room {
        return None;
    }
    if at.batch <= 1 {
        return Some(1);
    }
    let per_example = (at.total().saturating_sub(one.total())) as f64 / (at.batch - 1) as f64;
    if per_example <= 0.0 {
        return Some(at.batch);
    }
    // A twentieth spare: what the process holds when the next run checks
    // (its data, its code) differs by some MiB from now, and the estimate
    // is linear between two plans.
    let room = room - room / 20;
    if one.total() > room {
        return Some(1);
    }
    let fits = 1.0 + (room - one.total()) as f64 / per_example;
    // Two significant figures, rounded down: an estimate, not a promise.
    let fits = fits.floor().max(1.0) as u64;
    let magnitude = 10u64.pow((fits as f64).log10().floor().max(1.0) as u32 - 1);
    Some(((fits / magnitude) * magnitude).max(1) as usize)
}

/// The memory report: the training step's planned arena at batch `batch`,
/// its peak, and the largest buffers live at the peak, each named.
pub fn report(graph: &Graph, batch: usize, program: &crate::check::Program) -> String {
    let dims = HashMap::from([(BATCH.to_string(), batch as i64)]);
    let planned = match Planned::new(graph, &dims) {
        Ok(planned) => planned,
        Err(message) => return format!("memory: the step cannot be planned ({message})\n"),
    };
    let (fused, plan) = (&planned.fused, &planned.plan);
    let bound = &fused.bound;
    let end = fused.kernels.len() + 1;
    // One entry per place in the arena (products share their sum's).
    let mut places: HashMap<(usize, usize), Vec<NodeId>> = HashMap::new();
    for (&id, buffer) in &plan.buffers {
        places.entry((buffer.offset, buffer.len)).or_default().push(id);
    }
    // A loop's region (its carries, the current step of its sequences and
    // its body's buffers) is reserved while the loop's kernel runs.
    let regions: HashMap<(usize, usize), (NodeId, usize)> = plan
        .loops
        .iter()
        .filter(|(_, looped)| looped.region.1 > 0)
        .map(|(&root, looped)| (looped.region, (root, looped.live)))
        .collect();
    let live_at = |t: usize| -> Vec<((usize, usize), NodeId)> {
        let mut live: Vec<((usize, usize), NodeId)> = places
            .iter()
            .filter_map(|(&place, ids)| {
                let alive = ids.iter().any(|id| {
                    let buffer = &plan.buffers[id];
                    buffer.first <= t && t <= buffer.last
                });
                let id = *ids.iter().min_by_key(|id| bound.position[id.index()])?;
                alive.then_some((place, id))
            })
            .chain(
                regions
                    .iter()
                    .filter(|(_, &(_, live))| live == t)
                    .map(|(&region, &(root, _))| (region, root)),
            )
            .collect();
        live.sort_by_key(|((offset, len), _)| (std::cmp::Reverse(*len), *offset));
        live
    };
    let (peak_time, peak_bytes) = (0..=end)
        .map(|t| (t, live_at(t).iter().map(|((_, len), _)| 4 * *len as u64).sum::<u64>()))
        .max_by_key(|&(t, bytes)| (bytes, std::cmp::Reverse(t)))
        .unwrap_or((0, 0));
    let persistent = 4 * plan.persistent as u64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "memory of one training step at batch {} (f32): {} planned ({} of parameters, states and optimizer slots, {} without reuse)",
        group_thousands(batch as i64),
        bytes_text(planned.arena_bytes() as u64),
        bytes_text(persistent),
        bytes_text(4 * plan.unshared as u64),
    );
    let when = match peak_time {
        0 => "before the first kernel".to_string(),
        t if t == end => "at the final copies".to_string(),
        t => format!("at kernel {t} of {}", fused.kernels.len()),
    };
    let _ = writeln!(out, "  peak {} live {when}; the largest:", bytes_text(peak_bytes));
    let live = live_at(peak_time);
    let shown = 8;
    for (place, id) in live.iter().take(shown) {
        let len = place.1;
        let described = describe(graph, bound, plan, *id, program);
        let (ty, what) = if regions.contains_key(place) {
            (
                format!("f32[{len}]"),
                format!("the steps' working memory of the loop {described}"),
            )
        } else {
            (format!("{}{:?}", bound.dtype(*id).name(), bound.shape(*id)), described)
        };
        let _ = writeln!(out, "  {:>9}  {ty:<16} {what}", bytes_text(4 * len as u64));
    }
    if live.len() > shown {
        let rest: u64 = live[shown..].iter().map(|((_, len), _)| 4 * *len as u64).sum();
        let _ = writeln!(
            out,
            "  {:>9}  in {} smaller buffers",
            bytes_text(rest),
            live.len() - shown
        );
    }
    out
}

/// What a buffer of the plan holds, for people.
fn describe(
    graph: &Graph,
    bound: &crate::codegen::expand::Bound,
    plan: &crate::codegen::memory::Plan,
    id: NodeId,
    program: &crate::check::Program,
) -> String {
    let params = &program.params;
    let outputs: Vec<&str> = graph
        .outputs
        .iter()
        .filter(|(_, o)| *o == id)
        .map(|(name, _)| name.as_str())
        .collect();
    let role = &plan.buffers[&id].role;
    match (role, bound.op(id)) {
        (Role::Home(name), _) if name.starts_with("optimizer.") => format!("optimizer slot `{name}`"),
        (Role::Home(name), _) if params.iter().any(|p| &p.path == name) => format!("parameter `{name}`"),
        (Role::Home(name), _) => format!("state `{name}`"),
        (Role::Input(name), _) => format!("input `{name}` (the batch)"),
        (Role::Staged, Prim::Param(name) | Prim::State(name)) => format!("copy of `{name}` kept for the update"),
        (_, op) => {
            let kind = if let Some(grad) = outputs.iter().find_map(|o| o.strip_prefix("grad ")) {
                format!("the gradient of `{grad}`")
            } else if outputs.contains(&"model_output") {
                format!("the model's output ({} = {op})", bound.name(id))
            } else {
                format!("{} = {op}", bound.name(id))
            };
            match origin(graph, bound, id) {
                Some((span, true)) => format!("{kind}, made by {}", place(program, span)),
                Some((span, false)) => format!("{kind}, computed from values of {}", place(program, span)),
                None => match nearest_param(bound, id) {
                    Some(param) => format!("{kind}, computed from `{param}`"),
                    None => kind,
                },
            }
        }
    }
}

/// Where `id` comes from in the user's file: its own origin (`true`), or
/// else the origin of the nearest operand that has one (`false`: a value
/// of the backward pass or the update, made from that line's values).
fn origin(
    graph: &Graph,
    bound: &crate::codegen::expand::Bound,
    id: NodeId,
) -> Option<(crate::diagnostics::Span, bool)> {
    let of = |node: NodeId| graph.origins.get(&graph.node(node).serial).copied();
    if let Some(span) = of(id) {
        return Some((span, true));
    }
    let mut frontier = vec![id];
    let mut seen = std::collections::HashSet::new();
    for _ in 0..8 {
        let mut next = Vec::new();
        for node in frontier {
            for &input in &bound.inputs[node.index()] {
                if !seen.insert(input) || matches!(bound.op(input), Prim::Param(_) | Prim::State(_) | Prim::Input(_)) {
                    continue;
                }
                if let Some(span) = of(input) {
                    return Some((span, false));
                }
                next.push(input);
            }
        }
        frontier = next;
    }
    None
}

/// `line 8 (`relu(linear(x, H))`)` for a span of the user's file.
fn place(program: &crate::check::Program, span: crate::diagnostics::Span) -> String {
    let (line, _) = program.sources.line_col(span.file, span.start);
    let text = program.sources.text(span.file);
    let code = text.get(span.start as usize..span.end as usize).unwrap_or("");
    let code: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let code = if code.chars().count() > 48 {
        format!("{}...", code.chars().take(45).collect::<String>())
    } else {
        code
    };
    format!("line {line} `{code}`")
}

/// The parameter closest to `id` among its operands (breadth first): the
/// layer that made the value.
fn nearest_param(bound: &crate::codegen::expand::Bound, id: NodeId) -> Option<String> {
    let mut frontier = vec![id];
    let mut seen = std::collections::HashSet::new();
    for _ in 0..8 {
        let mut next = Vec::new();
        for node in frontier {
            for &input in &bound.inputs[node.index()] {
                if !seen.insert(input) {
                    continue;
                }
                if let Prim::Param(name) = bound.op(input) {
                    return Some(name.clone());
                }
                next.push(input);
            }
        }
        frontier = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("8G").unwrap(), 8 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("300mb").unwrap(), 300 << 20);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("4X").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(bytes_text(512), "512 B");
        assert_eq!(bytes_text(3 << 10), "3.0 KiB");
        assert_eq!(bytes_text(144_800_115_776), "135 GiB");
    }
}
