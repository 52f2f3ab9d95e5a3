//! The memory plan: every buffer's place in one arena, fixed at compile
//! time. Parameters and states have stable homes at the start of the
//! arena; inputs and computed buffers share the rest by liveness (greedy
//! by size, each buffer at the lowest offset free for its whole life).
//! An update `new X` is computed straight into `X`'s home when every read
//! of the old `X` happens earlier or at the same element; otherwise it is
//! copied home at the end of the step. A step allocates nothing.
//!
//! A loop node reserves a region while its kernel runs ([`LoopPlan`]): a
//! slot per carry and per sequence (its current step), then its body's
//! buffers, planned the same way from the region's start (the body's
//! arguments take the slots, and the buffers of captured values outside
//! the region, read in place). A next carry is computed straight into its
//! slot on the terms of `new X`.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use std::fmt::Write;

use super::fuse::{is_leaf, Fused, Kernel, Phase};
use crate::ir::NodeId;
use crate::prim::Prim;

/// Buffers start at multiples of 16 floats (64 bytes).
pub const ALIGN: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A parameter's or state's home.
    Home(String),
    /// Written by the host before each step.
    Input(String),
    /// Computed by a kernel; `output` if a named output reads it.
    Computed { output: bool },
    /// A copy of a persistent leaf taken at the start of the step.
    Staged,
    /// Argument `i` of a loop body: a slot of the loop's region (a carry,
    /// one step of a sequence) or a buffer outside it read in place (a
    /// captured value).
    Argument(usize),
}

#[derive(Clone, Debug)]
pub struct Buffer {
    /// Offset and length in f32 elements.
    pub offset: usize,
    pub len: usize,
    pub role: Role,
    /// First and last time step alive (0 = before the kernels, kernel `k`
    /// runs at `k + 1`, the final copies at `kernels + 1`).
    pub first: usize,
    pub last: usize,
}

/// A copy of `len` elements inside the arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    pub from: usize,
    pub to: usize,
    pub len: usize,
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// By node.
    pub buffers: HashMap<NodeId, Buffer>,
    /// Homes of parameters and states by name: offset, shape.
    pub homes: BTreeMap<String, (usize, Vec<usize>)>,
    /// Copies before the first kernel (persistent leaves that an update
    /// output names) and after the last one (updates not done in place).
    pub stage: Vec<Copy>,
    pub copies: Vec<Copy>,
    /// Elements of the persistent region and of the whole arena.
    pub persistent: usize,
    pub total: usize,
    /// Sum of all buffer sizes, as if nothing shared memory.
    pub unshared: usize,
    /// Every loop node's region and its body's plan.
    pub loops: HashMap<NodeId, LoopPlan>,
}

/// Where a loop runs: one region of the arena, reserved while the loop
/// runs (outer buffers use the space before and after), holding a slot per
/// carry and per sequence (its current step) and then the body's buffers,
/// planned like a graph's. Captured values are read in place.
#[derive(Clone, Debug, Default)]
pub struct LoopPlan {
    /// Offset and length (elements) of the region.
    pub region: (usize, usize),
    /// When the region is reserved (the loop's kernel).
    pub live: usize,
    pub carry_slots: Vec<usize>,
    pub sequence_slots: Vec<usize>,
    /// For a carry whose next value is another carry's argument (carries
    /// passed round unchanged): where that value waits while the carry
    /// slots are written.
    pub held: Vec<Option<usize>>,
    /// The body's plan, with absolute offsets.
    pub body: Plan,
    /// Whether the sequences' slots are apart from all that the copies
    /// after a step touch (the stacked results' and next carries' buffers,
    /// the carries' slots, where carries passed round wait): then the next
    /// step's sequences are copied in right after those copies, with no
    /// barrier between (`step.rs`).
    pub early_steps: bool,
}

impl LoopPlan {
    /// The region of loop node `root` of `fused` at `base`: the slots,
    /// then the body's plan; captured values are read where `outer` (the
    /// plan of `fused`) has them (nowhere yet when only sizing).
    fn new(fused: &Fused, root: NodeId, base: usize, live: usize, outer: Option<&Plan>) -> Result<LoopPlan, String> {
        let bound = &fused.bound;
        let Prim::Scan(looped) = bound.op(root) else {
            return Err(format!("{} is not a loop", bound.name(root)));
        };
        let body = &fused.bodies[&root];
        let operands = bound.inputs(root);
        if operands.len() != looped.operands() {
            return Err(format!(
                "{}: a loop of {} operands has {}",
                bound.name(root),
                looped.operands(),
                operands.len()
            ));
        }
        let mut at = base;
        let mut slot = |len: usize| {
            let offset = at;
            at += aligned(len.max(1));
            offset
        };
        let mut args = Vec::with_capacity(operands.len());
        let mut argument = |i: usize, offset: usize, len: usize| {
            args.push(Buffer {
                offset,
                len,
                role: Role::Argument(i),
                first: 0,
                last: body.kernels.len() + 1,
            })
        };
        let mut carry_slots = Vec::new();
        let mut sequence_slots = Vec::new();
        for (i, &operand) in operands.iter().enumerate() {
            let count = bound.count(operand);
            if i < looped.carries {
                let offset = slot(count);
                carry_slots.push(offset);
                argument(i, offset, count);
            } else if i < looped.carries + looped.sequences {
                let step = count / looped.length.max(1);
                let offset = slot(step);
                sequence_slots.push(offset);
                argument(i, offset, step);
            } else {
                match outer {
                    Some(plan) => {
                        let buffer = plan.buffer(operand);
                        argument(i, buffer.offset, buffer.len);
                    }
                    None => argument(i, 0, count),
                }
            }
        }
        let mut held = Vec::new();
        for (k, &operand) in operands.iter().enumerate().take(looped.carries) {
            let output = looped
                .carry_output(k)
                .ok_or_else(|| format!("{}: the body lacks `carry {k}`", bound.name(root)))?;
            let passed = matches!(body.bound.op(output), Prim::Arg(j) if *j < looped.carries && *j != k);
            held.push(passed.then(|| slot(bound.count(operand))));
        }
        let plan = Plan::place(body, at, &args, looped.carries)?;
        // A body updates nothing by name (its outputs are `carry k` and
        // `y k`), so it has no copies before or after its kernels.
        if !plan.stage.is_empty() || !plan.copies.is_empty() {
            return Err(format!("{}: a loop body with copies of its own", bound.name(root)));
        }
        let steps: Vec<(usize, usize)> = operands[looped.carries..looped.carries + looped.sequences]
            .iter()
            .zip(&sequence_slots)
            .map(|(&operand, &at)| (at, at + bound.count(operand) / looped.length.max(1)))
            .collect();
        let mut touched: Vec<(usize, usize)> = Vec::new();
        for output in (0..looped.carries)
            .filter_map(|k| looped.carry_output(k))
            .chain((0..looped.ys).filter_map(|k| looped.y_output(k)))
        {
            let buffer = plan.buffer(output);
            touched.push((buffer.offset, buffer.offset + buffer.len));
        }
        for (k, &at) in carry_slots.iter().enumerate() {
            let len = bound.count(operands[k]);
            touched.push((at, at + len));
            if let Some(Some(wait)) = held.get(k) {
                touched.push((*wait, *wait + len));
            }
        }
        let apart = |(a0, a1): (usize, usize), (b0, b1): (usize, usize)| a1 <= b0 || b1 <= a0 || a0 == a1 || b0 == b1;
        let early_steps = steps.iter().all(|&s| touched.iter().all(|&t| apart(s, t)));
        Ok(LoopPlan {
            region: (base, plan.total - base),
            live,
            carry_slots,
            sequence_slots,
            held,
            body: plan,
            early_steps,
        })
    }
}

/// What a placement request is for.
enum Place {
    Node(NodeId),
    Staged,
    /// The region of a loop node.
    Region(NodeId),
}

fn aligned(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Most elements an arena may span: its bytes must be addressable
/// (`isize::MAX`), whatever a plan that is never run prints.
const MAX_ARENA_ELEMENTS: usize = isize::MAX as usize / 4;

/// Where `len` elements placed at `start` end, if the arena can still
/// address them (see `MAX_ARENA_ELEMENTS`).
fn end_within_arena(start: usize, len: usize) -> Result<usize, String> {
    start
        .checked_add(len)
        .filter(|&end| end <= MAX_ARENA_ELEMENTS)
        .ok_or_else(|| {
            format!(
                "the step's buffers would need more than {} bytes of memory",
                crate::check::group_thousands((MAX_ARENA_ELEMENTS * 4) as i64)
            )
        })
}

impl Plan {
    pub fn new(fused: &Fused) -> Result<Plan, String> {
        Plan::place(fused, 0, &[], 0)
    }

    /// The plan of `fused` with every buffer at `base` or after, a loop
    /// body's arguments taking the buffers `args` (by argument number), the
    /// first `carries` of them the slots of its carries.
    fn place(fused: &Fused, base: usize, args: &[Buffer], carries: usize) -> Result<Plan, String> {
        let started = std::time::Instant::now();
        let bound = &fused.bound;
        let end = fused.kernels.len() + 1;
        let mut plan = Plan::default();

        // Homes: every persistent leaf, and every `new X` without one.
        let mut home_nodes: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
        for &id in &bound.order {
            if let Prim::Param(name) | Prim::State(name) = bound.op(id) {
                home_nodes.entry(name.clone()).or_default().push(id);
                plan.homes.entry(name.clone()).or_insert((0, bound.shape(id).to_vec()));
            }
        }
        for (name, id) in &bound.graph.outputs {
            if let Some(target) = name.strip_prefix("new ") {
                let shape = bound.shape(*id).to_vec();
                match plan.homes.get(target) {
                    Some((_, home)) if *home != shape => {
                        return Err(format!("`{name}` is {shape:?}, but `{target}` is {home:?}"));
                    }
                    Some(_) => {}
                    None => {
                        plan.homes.insert(target.to_string(), (0, shape));
                    }
                }
            }
        }
        if base > 0 && !plan.homes.is_empty() {
            return Err("a loop body reads a parameter or state that is not its argument".into());
        }
        let mut offset = base;
        for (name, (home, shape)) in plan.homes.iter_mut() {
            *home = offset;
            let len: usize = shape.iter().product();
            for &id in home_nodes.get(name).into_iter().flatten() {
                plan.buffers.insert(
                    id,
                    Buffer {
                        offset,
                        len,
                        role: Role::Home(name.clone()),
                        first: 0,
                        last: end,
                    },
                );
            }
            offset = end_within_arena(offset, aligned(len))?;
        }
        plan.persistent = offset;

        // Lifetimes of inputs and computed buffers.
        let outputs: Vec<NodeId> = bound.graph.outputs.iter().map(|(_, id)| *id).collect();
        let mut life: BTreeMap<usize, (NodeId, Role, usize, usize)> = BTreeMap::new();
        for &id in &bound.order {
            let position = bound.position[id.index()];
            match bound.op(id) {
                Prim::Input(name) => {
                    let last = if outputs.contains(&id) { end } else { 0 };
                    life.insert(position, (id, Role::Input(name.clone()), 0, last));
                }
                _ if fused.sums.contains_key(&id) => {}
                op if fused.is_materialized(id) && !is_leaf(op) => {
                    // A sum of products lives from its first product on.
                    let first_product = fused
                        .sums
                        .iter()
                        .filter(|(_, s)| s.total == id)
                        .map(|(p, _)| fused.kernel_of[p])
                        .min();
                    let k = first_product.unwrap_or(fused.kernel_of[&id]) + 1;
                    let last = if outputs.contains(&id) { end } else { k };
                    life.insert(
                        position,
                        (
                            id,
                            Role::Computed {
                                output: outputs.contains(&id),
                            },
                            k,
                            last,
                        ),
                    );
                }
                _ => {}
            }
        }
        let mut position_of: HashMap<NodeId, usize> = HashMap::default();
        for (p, (id, ..)) in &life {
            position_of.insert(*id, *p);
        }
        let lives_done = started.elapsed();
        let reads: Vec<Vec<super::fuse::Read>> = (0..fused.kernels.len()).map(|k| fused.reads(k)).collect();
        let reads_done = started.elapsed();
        for (k, kernel_reads) in reads.iter().enumerate() {
            for read in kernel_reads {
                if let Some(p) = position_of.get(&read.buffer) {
                    let entry = life.get_mut(p).expect("a buffer");
                    entry.3 = entry.3.max(k + 1);
                }
            }
        }

        // Updates: in place where safe, else a copy at the end.
        let mut in_place: HashMap<NodeId, String> = HashMap::default();
        let mut finals: Vec<(NodeId, String)> = Vec::new();
        let mut staged: Vec<NodeId> = Vec::new();
        for (name, id) in &bound.graph.outputs {
            let Some(target) = name.strip_prefix("new ") else {
                if matches!(bound.op(*id), Prim::Param(_) | Prim::State(_)) && !staged.contains(id) {
                    staged.push(*id);
                }
                continue;
            };
            let op = bound.op(*id);
            if matches!(op, Prim::Param(n) | Prim::State(n) if n == target) {
                continue;
            }
            if is_leaf(op) {
                if matches!(op, Prim::Param(_) | Prim::State(_)) && !staged.contains(id) {
                    staged.push(*id);
                }
                finals.push((*id, target.to_string()));
                continue;
            }
            let readers = home_nodes.get(target).cloned().unwrap_or_default();
            if !in_place.contains_key(id) && updates_in_place(fused, &reads, *id, &readers) {
                in_place.insert(*id, target.to_string());
            } else {
                finals.push((*id, target.to_string()));
            }
        }
        // A body's next carry is computed straight into the carry's slot
        // on the same terms, unless an output is the old value itself (the
        // loop copies outputs after the body).
        for (k, slot) in args.iter().enumerate().take(carries) {
            let Some(id) = bound.graph.output(&format!("carry {k}")) else {
                continue;
            };
            if !position_of.contains_key(&id) || in_place.contains_key(&id) {
                continue;
            }
            let readers: Vec<NodeId> = bound
                .order
                .iter()
                .copied()
                .filter(|&n| matches!(bound.op(n), Prim::Arg(i) if *i == k))
                .collect();
            if bound.graph.outputs.iter().any(|(_, o)| readers.contains(o)) {
                continue;
            }
            if updates_in_place(fused, &reads, id, &readers) {
                let (_, role, first, last) = life.remove(&position_of[&id]).expect("a computed buffer");
                let buffer = Buffer {
                    offset: slot.offset,
                    len: slot.len,
                    role,
                    first,
                    last,
                };
                plan.buffers.insert(id, buffer);
            }
        }
        for (id, target) in &in_place {
            let p = position_of[id];
            let (_, role, first, last) = life.remove(&p).expect("a computed buffer");
            let (home, shape) = &plan.homes[target];
            plan.buffers.insert(
                *id,
                Buffer {
                    offset: *home,
                    len: shape.iter().product(),
                    role,
                    first,
                    last,
                },
            );
        }
        // Staged leaves are read from their copy from the start.
        let mut staged_buffers: Vec<(NodeId, usize)> = Vec::new();
        for &id in &staged {
            let len = bound.count(id);
            staged_buffers.push((id, len));
        }

        let updates_done = started.elapsed();
        // Greedy by size: biggest first, at the lowest offset free for
        // the buffer's whole life.
        let mut requests: Vec<(usize, usize, usize, Place, Role)> = life
            .values()
            .map(|(id, role, first, last)| (bound.count(*id), *first, *last, Place::Node(*id), role.clone()))
            .collect();
        for &(_, len) in &staged_buffers {
            requests.push((len, 0, end, Place::Staged, Role::Staged));
        }
        // Each loop's region, reserved while its kernel runs.
        for (k, kernel) in fused.kernels.iter().enumerate() {
            if let Kernel::Scan(root) = kernel {
                let size = LoopPlan::new(fused, *root, 0, k + 1, None)?.region.1;
                requests.push((size, k + 1, k + 1, Place::Region(*root), Role::Staged));
            }
        }
        let mut regions: Vec<(NodeId, usize, usize)> = Vec::new();
        requests.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        // Placed buffers as (offset, len, first, last), kept sorted by
        // offset so that finding the lowest free offset is one walk that
        // stops at the first gap, with no list of conflicts to sort (the
        // walk sees the conflicts in the order sorting them gave).
        let mut placed: Vec<(usize, usize, usize, usize)> = Vec::new();
        let mut staged_offsets: Vec<usize> = Vec::new();
        // Every offset below is at most the persistent part plus every
        // request: bounded here, the sums that place them cannot overflow.
        requests.iter().try_fold(plan.persistent, |total, request| {
            end_within_arena(total, aligned(request.0.max(1)))
        })?;
        for (len, first, last, id, role) in requests {
            let size = aligned(len.max(1));
            let mut at = plan.persistent;
            for &(o, s, f, l) in &placed {
                // Sorted by offset: from here on nothing can move `at`.
                if at + size <= o {
                    break;
                }
                if f > last || first > l {
                    continue;
                }
                at = at.max(o + s);
            }
            let index = placed.partition_point(|&(o, s, ..)| (o, s) <= (at, size));
            placed.insert(index, (at, size, first, last));
            plan.unshared += size;
            match id {
                Place::Node(id) => {
                    plan.buffers.insert(
                        id,
                        Buffer {
                            offset: at,
                            len,
                            role,
                            first,
                            last,
                        },
                    );
                }
                Place::Staged => staged_offsets.push(at),
                Place::Region(root) => regions.push((root, at, first)),
            }
        }
        // Products share the buffer of their sum.
        for (product, sum) in &fused.sums {
            let buffer = plan.buffers[&sum.total].clone();
            plan.buffers.insert(*product, buffer);
        }
        // Staged copies: requests of equal size may have been reordered,
        // so assign offsets to staged leaves in request order by size.
        let mut staged_sorted = staged_buffers.clone();
        staged_sorted.sort_by_key(|s| std::cmp::Reverse(s.1));
        for ((id, len), at) in staged_sorted.into_iter().zip(staged_offsets) {
            let home = plan.buffers[&id].offset;
            plan.stage.push(Copy {
                from: home,
                to: at,
                len,
            });
            plan.buffers.insert(
                id,
                Buffer {
                    offset: at,
                    len,
                    role: Role::Staged,
                    first: 0,
                    last: end,
                },
            );
        }
        for (id, target) in finals {
            let (home, shape) = &plan.homes[&target];
            plan.copies.push(Copy {
                from: plan.buffers[&id].offset,
                to: *home,
                len: shape.iter().product(),
            });
        }
        for &id in &bound.order {
            if let Prim::Arg(i) = bound.op(id) {
                let buffer = args
                    .get(*i)
                    .ok_or_else(|| format!("{} reads argument {i} of {}", bound.name(id), args.len()))?;
                plan.buffers.insert(id, buffer.clone());
            }
        }
        // The loops, now that every buffer they capture has its place.
        for (root, at, live) in regions {
            let looped = LoopPlan::new(fused, root, at, live, Some(&plan))?;
            plan.loops.insert(root, looped);
        }
        plan.total = placed
            .iter()
            .map(|(o, s, _, _)| o + s)
            .max()
            .unwrap_or(0)
            .max(plan.persistent)
            .max(base);
        plan.unshared += plan.persistent;
        if crate::timing::enabled() {
            eprintln!(
                "memory: lifetimes {lives_done:.1?}, reads {:.1?}, updates {:.1?}, placement {:.1?} ({} buffers)",
                reads_done - lives_done,
                updates_done - reads_done,
                started.elapsed() - updates_done,
                plan.buffers.len()
            );
        }
        Ok(plan)
    }

    pub fn buffer(&self, id: NodeId) -> &Buffer {
        &self.buffers[&id]
    }
}

/// Whether `new` (an update of the persistent tensor read through
/// `readers`) can be computed straight into the tensor's home: every read
/// of the old value is in an earlier kernel, or in `new`'s own map phase
/// at the element being written, by `new` or a root before it (a
/// concatenation must not read it at all; other kernels never update in
/// place).
fn updates_in_place(fused: &Fused, reads: &[Vec<super::fuse::Read>], new: NodeId, readers: &[NodeId]) -> bool {
    let Some(&k) = fused.kernel_of.get(&new) else {
        return false;
    };
    if reads[k + 1..].iter().flatten().any(|r| readers.contains(&r.buffer)) {
        return false;
    }
    let kernel = match &fused.kernels[k] {
        Kernel::Loop(kernel) => kernel,
        // A concatenation writes its value in any order: only if it does
        // not read the old one. (A product may be one of a sum's, which
        // the sum's earlier products write before this kernel.)
        Kernel::Concat(_) => return !reads[k].iter().any(|r| readers.contains(&r.buffer)),
        // A sum with a scatter starts from its base, element by element,
        // before it adds a row: in place if the base is the old value
        // itself and the rows added are read from buffers of their own
        // (rows computed on the fly from the old value would read rows
        // the kernel has already written).
        Kernel::Scatter(root) if *root == new => {
            return match super::fuse::scatter_added(&fused.bound, new) {
                Some((base, scatter)) => {
                    readers.contains(&base)
                        && fused
                            .bound
                            .inputs(scatter)
                            .iter()
                            .all(|i| fused.materialized[i.index()] && !readers.contains(i))
                }
                None => false,
            }
        }
        _ => return false,
    };
    let Some((phase_number, position)) = kernel.phases.iter().enumerate().find_map(|(p, phase)| match phase {
        Phase::Map { roots, .. } => roots.iter().position(|&r| r == new).map(|i| (p, i)),
        Phase::Reduce { .. } => None,
    }) else {
        return false;
    };
    let bound = &fused.bound;
    let phase = &kernel.phases[phase_number];
    let own = super::fuse::own_element(bound, &kernel.outer, phase_number, phase, new);
    reads[k]
        .iter()
        .filter(|r| readers.contains(&r.buffer))
        .all(|r| r.phase == phase_number && r.position <= position && r.offset.as_ref() == Some(&own))
}

/// The plan as text: every buffer with its node, shape, place and life,
/// each loop's region with its body's buffers, then the totals.
pub fn print(fused: &Fused, plan: &Plan) -> String {
    let mut out = String::new();
    print_buffers(fused, plan, "", &mut out);
    for copy in &plan.stage {
        let _ = writeln!(
            out,
            "stage {} B from {} to {}",
            4 * copy.len,
            4 * copy.from,
            4 * copy.to
        );
    }
    for copy in &plan.copies {
        let _ = writeln!(out, "copy {} B from {} to {}", 4 * copy.len, 4 * copy.from, 4 * copy.to);
    }
    let _ = writeln!(
        out,
        "persistent {} B, arena {} B (peak), {} B without reuse",
        4 * plan.persistent,
        4 * plan.total,
        4 * plan.unshared
    );
    out
}

fn print_buffers(fused: &Fused, plan: &Plan, indent: &str, out: &mut String) {
    let bound = &fused.bound;
    let mut rows: Vec<(usize, String)> = Vec::new();
    for (&id, buffer) in &plan.buffers {
        let role = match &buffer.role {
            Role::Home(name) => format!("home {name}"),
            Role::Input(name) => format!("input {name}"),
            Role::Computed { output: true } => "output".to_string(),
            Role::Computed { output: false } => "temp".to_string(),
            Role::Staged => "staged copy".to_string(),
            Role::Argument(i) => format!("argument {i}"),
        };
        let in_home = matches!(buffer.role, Role::Computed { .. }) && buffer.offset < plan.persistent;
        let role = if in_home { format!("{role}, in place") } else { role };
        rows.push((
            bound.position[id.index()],
            format!(
                "{indent}{:>6}: {}{:?} {} B at {} live {}..{} ({role})",
                bound.name(id),
                bound.dtype(id).name(),
                bound.shape(id),
                4 * buffer.len,
                4 * buffer.offset,
                buffer.first,
                buffer.last,
            ),
        ));
    }
    rows.sort();
    for (_, row) in rows {
        let _ = writeln!(out, "{row}");
    }
    let mut loops: Vec<(&NodeId, &LoopPlan)> = plan.loops.iter().collect();
    loops.sort_by_key(|(id, _)| bound.position[id.index()]);
    for (id, looped) in loops {
        let bytes = |offsets: &[usize]| {
            offsets
                .iter()
                .map(|o| (4 * o).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Each sequence's slot, and where its steps are read from when
        // that is not its own buffer.
        let Prim::Scan(scan) = bound.op(*id) else {
            continue;
        };
        let sequences = &bound.inputs(*id)[scan.carries..scan.carries + scan.sequences];
        let steps: Vec<String> = looped
            .sequence_slots
            .iter()
            .zip(sequences)
            .map(|(slot, &sequence)| match fused.sequence_view(sequence) {
                Some(view) if view.buffer != sequence => {
                    let zeros = |n: usize, at: &str| match n {
                        0 => String::new(),
                        1 => format!(", a step of zeros {at}"),
                        n => format!(", {n} steps of zeros {at}"),
                    };
                    format!(
                        "{} (read from {}{}{})",
                        4 * slot,
                        bound.name(view.buffer),
                        zeros(view.before, "first"),
                        zeros(view.after, "last")
                    )
                }
                _ => (4 * slot).to_string(),
            })
            .collect();
        let _ = writeln!(
            out,
            "{indent}loop {}: region {} B at {} live {}..{}; carries at [{}], steps at [{}]{}; its body:",
            bound.name(*id),
            4 * looped.region.1,
            4 * looped.region.0,
            looped.live,
            looped.live,
            bytes(&looped.carry_slots),
            steps.join(", "),
            if looped.early_steps && !looped.sequence_slots.is_empty() {
                ", copied in as the step before ends"
            } else {
                ""
            },
        );
        print_buffers(&fused.bodies[id], &looped.body, &format!("{indent}    "), out);
    }
}
