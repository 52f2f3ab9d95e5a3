//! From graph nodes to kernel expressions: [`Bound`] fixes every shape and
//! size of a graph for given `dims`, and [`Expander`] writes the value of a
//! node at an index as an [`Expr`], inlining every node that is not
//! materialized (element-wise ops, layout ops, gathers) and loading the
//! ones that are.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use super::expr::{Expr, Exprs, E};
use super::index::{flat, unflatten, Atom, Ix};
use crate::interp::{eval_dim, eval_shape};
use crate::ir::{Graph, NodeId};
use crate::prim::{BinaryOp, DType, Prim, UnaryOp};

/// A graph with every size bound: shapes, operands and users by node.
pub struct Bound<'g> {
    pub graph: &'g Graph,
    pub order: Vec<NodeId>,
    /// By `NodeId::index()`.
    pub shapes: Vec<Vec<usize>>,
    pub inputs: Vec<Vec<NodeId>>,
    pub users: Vec<Vec<NodeId>>,
    /// Position in `order`, by node index.
    pub position: Vec<usize>,
    /// `%k` names as the IR printer numbers nodes.
    pub names: FxHashMap<NodeId, String>,
    /// Evaluated size attributes (slice start, pad sizes, counts, rows,
    /// classes), by node index.
    pub sizes: Vec<Vec<i64>>,
    /// The body of every loop node, bound with the same sizes.
    pub bodies: FxHashMap<NodeId, Bound<'g>>,
}

impl<'g> Bound<'g> {
    pub fn new(graph: &'g Graph, dims: &HashMap<String, i64>) -> Result<Bound<'g>, String> {
        let order = graph.topo_order();
        if order.len() != graph.len() {
            return Err("the graph has a cycle".into());
        }
        let slots = graph.graph.node_indices().map(|i| i.index() + 1).max().unwrap_or(0);
        let mut bound = Bound {
            graph,
            order: order.clone(),
            shapes: vec![Vec::new(); slots],
            inputs: vec![Vec::new(); slots],
            users: vec![Vec::new(); slots],
            position: vec![usize::MAX; slots],
            names: FxHashMap::default(),
            sizes: vec![Vec::new(); slots],
            bodies: FxHashMap::default(),
        };
        let numbering = crate::ir::print::numbering(graph);
        for (position, &id) in order.iter().enumerate() {
            let node = graph.node(id);
            let name = numbering.get(&node.serial).cloned().unwrap_or_default();
            let context = |e: crate::interp::InterpError| format!("{name} = {}: {}", node.op, e.message);
            bound.shapes[id.index()] = eval_shape(&node.shape, dims).map_err(context)?;
            let size = |d| eval_dim(d, dims).map_err(context);
            if let Prim::Scan(looped) = &node.op {
                let body = Bound::new(&looped.body, dims).map_err(|e| format!("{name} = scan, in its body: {e}"))?;
                bound.bodies.insert(id, body);
            }
            bound.sizes[id.index()] = match &node.op {
                Prim::Count(d) | Prim::ScatterRows { rows: d } | Prim::Place { classes: d } => vec![size(d)?],
                Prim::Slice { start, .. } => vec![size(start)?],
                Prim::Pad { before, after, .. } => vec![size(before)?, size(after)?],
                _ => Vec::new(),
            };
            bound.inputs[id.index()] = graph.inputs(id);
            bound.users[id.index()] = graph.users(id);
            bound.position[id.index()] = position;
            bound.names.insert(id, name);
        }
        let problems = crate::ir::verify::verify(graph);
        if let Some((id, message)) = problems.first() {
            return Err(format!("{}: {message}", bound.name(*id)));
        }
        Ok(bound)
    }

    pub fn shape(&self, id: NodeId) -> &[usize] {
        &self.shapes[id.index()]
    }

    pub fn count(&self, id: NodeId) -> usize {
        self.shape(id).iter().product()
    }

    pub fn op(&self, id: NodeId) -> &Prim {
        &self.graph.node(id).op
    }

    pub fn dtype(&self, id: NodeId) -> DType {
        self.graph.node(id).dtype
    }

    pub fn inputs(&self, id: NodeId) -> &[NodeId] {
        &self.inputs[id.index()]
    }

    pub fn users(&self, id: NodeId) -> &[NodeId] {
        &self.users[id.index()]
    }

    pub fn name(&self, id: NodeId) -> String {
        self.names.get(&id).cloned().unwrap_or_else(|| "%?".into())
    }
}

/// Row-major index variables `first..` over `shape`.
pub fn vars(first: u32, shape: &[usize]) -> Vec<Ix> {
    shape
        .iter()
        .enumerate()
        .map(|(k, &n)| Ix::var(first + k as u32, n as i64))
        .collect()
}

/// Writes node values as expressions into one [`Exprs`] arena.
pub struct Expander<'a, 'g> {
    pub bound: &'a Bound<'g>,
    /// Nodes that live in buffers (by node index).
    pub materialized: &'a [bool],
    pub exprs: &'a mut Exprs,
    memo: FxHashMap<(NodeId, Vec<Ix>), E>,
}

impl<'a, 'g> Expander<'a, 'g> {
    pub fn new(bound: &'a Bound<'g>, materialized: &'a [bool], exprs: &'a mut Exprs) -> Self {
        Expander {
            bound,
            materialized,
            exprs,
            memo: FxHashMap::default(),
        }
    }

    /// The value of `id` at `index`: a load if it is materialized.
    pub fn value(&mut self, id: NodeId, index: &[Ix]) -> E {
        if self.materialized[id.index()] {
            let offset = flat(index, self.bound.shape(id));
            return self.exprs.add(Expr::Load { buffer: id, offset });
        }
        self.define(id, index)
    }

    /// The value of `id` at `index` from its operands (never a load of `id`).
    pub fn define(&mut self, id: NodeId, index: &[Ix]) -> E {
        let key = (id, index.to_vec());
        if let Some(&e) = self.memo.get(&key) {
            return e;
        }
        let e = self.compute(id, index);
        let e = self.conform(id, e);
        self.memo.insert(key, e);
        e
    }

    /// Rounds a result to its node's dtype, as the interpreter does: `i32`
    /// results truncate toward zero, bool results are `x != 0`. Ops that
    /// keep integers integral and bools 0/1 need no rounding.
    fn conform(&mut self, id: NodeId, e: E) -> E {
        let op = self.bound.op(id);
        let from_float = matches!(self.input_dtype(id), Some(DType::F32 | DType::F64));
        match self.bound.dtype(id) {
            DType::I32 => {
                let inexact = matches!(
                    op,
                    Prim::Binary(BinaryOp::Div | BinaryOp::Pow) | Prim::Random { .. } | Prim::Fold2d(_)
                ) || matches!(op, Prim::Unary(u) if !matches!(u, UnaryOp::Neg | UnaryOp::Abs))
                    || (matches!(op, Prim::Cast(_)) && from_float);
                if inexact {
                    let e = self.exprs.as_f32(e);
                    self.exprs.add(Expr::Trunc(e))
                } else {
                    e
                }
            }
            DType::Bool => {
                let inexact = matches!(
                    op,
                    Prim::Binary(BinaryOp::Add | BinaryOp::Sub | BinaryOp::Div | BinaryOp::Pow)
                        | Prim::Random { .. }
                        | Prim::Iota { .. }
                        | Prim::Count(_)
                        | Prim::Fold2d(_)
                ) || matches!(op, Prim::Unary(u) if *u != UnaryOp::Not);
                if inexact {
                    self.exprs.as_mask(e)
                } else {
                    e
                }
            }
            DType::F32 | DType::F64 => e,
        }
    }

    fn input_dtype(&self, id: NodeId) -> Option<DType> {
        self.bound.inputs(id).first().map(|&i| self.bound.dtype(i))
    }

    fn operand(&self, id: NodeId, k: usize) -> NodeId {
        self.bound.inputs(id)[k]
    }

    fn compute(&mut self, id: NodeId, index: &[Ix]) -> E {
        let shape = self.bound.shape(id).to_vec();
        let dtype = self.bound.dtype(id);
        match self.bound.op(id).clone() {
            // A loop's value, a sum over processes and a body's arguments
            // are always in buffers.
            Prim::Input(_) | Prim::Param(_) | Prim::State(_) | Prim::Arg(_) | Prim::Scan(_) | Prim::AllReduce => {
                let offset = flat(index, &shape);
                self.exprs.add(Expr::Load { buffer: id, offset })
            }
            Prim::Const(value) => {
                let value = match dtype {
                    DType::I32 => value.trunc(),
                    DType::Bool => f64::from(u8::from(value != 0.0)),
                    DType::F32 | DType::F64 => value,
                };
                self.exprs.constant(value as f32)
            }
            Prim::Count(_) => {
                let value = self.bound.sizes[id.index()][0];
                self.exprs.constant(value as f32)
            }
            Prim::Iota { axis } => self.exprs.add(Expr::Index(index[axis].clone())),
            Prim::Random { dist, stream, offset } => {
                let mut flat = flat(index, &shape);
                flat.constant += offset as i64;
                self.exprs.add(Expr::Random { dist, stream, flat })
            }
            Prim::Unary(UnaryOp::Not) => {
                let x = self.value(self.operand(id, 0), index);
                let x = self.exprs.as_mask(x);
                self.exprs.add(Expr::Not(x))
            }
            Prim::Unary(op) => {
                let x = self.value(self.operand(id, 0), index);
                let x = self.exprs.as_f32(x);
                self.exprs.add(Expr::Unary(op, x))
            }
            Prim::Binary(op) => {
                let a = self.value(self.operand(id, 0), index);
                let b = self.value(self.operand(id, 1), index);
                match op {
                    BinaryOp::And | BinaryOp::Or => {
                        let (a, b) = (self.exprs.as_mask(a), self.exprs.as_mask(b));
                        let expr = if op == BinaryOp::And {
                            Expr::And(a, b)
                        } else {
                            Expr::Or(a, b)
                        };
                        self.exprs.add(expr)
                    }
                    _ => {
                        let (a, b) = (self.exprs.as_f32(a), self.exprs.as_f32(b));
                        self.exprs.add(Expr::Binary(op, a, b))
                    }
                }
            }
            Prim::Select => {
                let c = self.value(self.operand(id, 0), index);
                let c = self.exprs.as_mask(c);
                let a = self.value(self.operand(id, 1), index);
                let b = self.value(self.operand(id, 2), index);
                let (a, b) = (self.exprs.as_f32(a), self.exprs.as_f32(b));
                self.exprs.add(Expr::Select(c, a, b))
            }
            Prim::Cast(to) => {
                let x = self.value(self.operand(id, 0), index);
                match to {
                    DType::Bool => self.exprs.as_mask(x),
                    _ => self.exprs.as_f32(x),
                }
            }
            Prim::StopGrad => self.value(self.operand(id, 0), index),
            Prim::Reshape => {
                let input = self.operand(id, 0);
                let offset = flat(index, &shape);
                if self.materialized[input.index()] {
                    // A buffer is row-major: the element is at the same
                    // flat offset, with no division to undo.
                    return self.exprs.add(Expr::Load { buffer: input, offset });
                }
                let inner = unflatten(&offset, self.bound.shape(input));
                self.value(input, &inner)
            }
            Prim::Permute(perm) => {
                let input = self.operand(id, 0);
                let mut inner = vec![Ix::constant(0); perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inner[p] = index[i].clone();
                }
                self.value(input, &inner)
            }
            Prim::Broadcast => {
                let input = self.operand(id, 0);
                let in_shape = self.bound.shape(input).to_vec();
                let offset = shape.len() - in_shape.len();
                let inner: Vec<Ix> = in_shape
                    .iter()
                    .enumerate()
                    .map(|(j, &n)| {
                        if n == 1 {
                            Ix::constant(0)
                        } else {
                            index[j + offset].clone()
                        }
                    })
                    .collect();
                self.value(input, &inner)
            }
            Prim::Slice { axis, step, .. } => {
                let input = self.operand(id, 0);
                let start = self.bound.sizes[id.index()][0];
                let mut inner = index.to_vec();
                inner[axis] = index[axis].scale(step).add_constant(start);
                self.value(input, &inner)
            }
            Prim::Pad { axis, value, .. } => {
                let input = self.operand(id, 0);
                let before = self.bound.sizes[id.index()][0];
                let n = self.bound.shape(input)[axis] as i64;
                let t = index[axis].add_constant(-before);
                let inside = self.exprs.add(Expr::InRange {
                    ix: t.clone(),
                    lo: 0,
                    hi: n,
                });
                let mut inner = index.to_vec();
                inner[axis] = t.clamp_to(n);
                let x = self.value(input, &inner);
                let x = self.exprs.as_f32(x);
                let fill = self.exprs.constant(value as f32);
                self.exprs.add(Expr::Select(inside, x, fill))
            }
            Prim::Concat { axis } => {
                let operands = self.bound.inputs(id).to_vec();
                let mut start = 0i64;
                let mut pieces = Vec::new();
                for &operand in &operands {
                    let n = self.bound.shape(operand)[axis] as i64;
                    pieces.push((operand, start, n));
                    start += n;
                }
                let mut result = None;
                for &(operand, start, n) in pieces.iter().rev() {
                    let t = index[axis].add_constant(-start);
                    let mut inner = index.to_vec();
                    inner[axis] = t.clamp_to(n);
                    let x = self.value(operand, &inner);
                    let x = self.exprs.as_f32(x);
                    result = Some(match result {
                        None => x,
                        Some(rest) => {
                            let inside = self.exprs.add(Expr::InRange {
                                ix: index[axis].clone(),
                                lo: start,
                                hi: start + n,
                            });
                            self.exprs.add(Expr::Select(inside, x, rest))
                        }
                    });
                }
                result.expect("concat has operands")
            }
            Prim::Take => {
                let (table, ids) = (self.operand(id, 0), self.operand(id, 1));
                let k = self.bound.shape(ids).len();
                let rows = self.bound.shape(table)[0] as i64;
                let id_value = self.value(ids, &index[..k]);
                let id_value = self.exprs.as_f32(id_value);
                let mut inner = vec![Ix::atom(Atom::Dyn {
                    expr: id_value,
                    size: rows,
                })];
                inner.extend_from_slice(&index[k..]);
                self.guarded_gather(table, &inner, id_value, rows)
            }
            Prim::Pick => {
                let (x, ids) = (self.operand(id, 0), self.operand(id, 1));
                let classes = *self.bound.shape(x).last().expect("pick from a tensor") as i64;
                let id_value = self.value(ids, index);
                let id_value = self.exprs.as_f32(id_value);
                let mut inner = index.to_vec();
                inner.push(Ix::atom(Atom::Dyn {
                    expr: id_value,
                    size: classes,
                }));
                self.guarded_gather(x, &inner, id_value, classes)
            }
            Prim::Place { .. } => {
                let (values, ids) = (self.operand(id, 0), self.operand(id, 1));
                let lead = &index[..index.len() - 1];
                let id_value = self.value(ids, lead);
                let id_value = self.exprs.as_f32(id_value);
                let v = self.value(values, lead);
                let v = self.exprs.as_f32(v);
                let hit = self.exprs.add(Expr::IdEquals {
                    expr: id_value,
                    ix: index[index.len() - 1].clone(),
                });
                let zero = self.exprs.constant(0.0);
                self.exprs.add(Expr::Select(hit, v, zero))
            }
            Prim::Unfold2d(w) => {
                let input = self.operand(id, 0);
                let (c_in, h, wd) = {
                    let s = self.bound.shape(input);
                    (s[1] as i64, s[2] as i64, s[3] as i64)
                };
                let (k, s, p) = (w.kernel as i64, w.stride as i64, w.padding as i64);
                // Tap-major features: `(ki·k + kj)·C + c`.
                let f = &index[3];
                let c = f.rem(c_in);
                let ki = f.div(c_in * k);
                let kj = f.div(c_in).rem(k);
                let y = index[1].scale(s).add(&ki).add_constant(-p);
                let x = index[2].scale(s).add(&kj).add_constant(-p);
                let in_y = self.exprs.add(Expr::InRange {
                    ix: y.clone(),
                    lo: 0,
                    hi: h,
                });
                let in_x = self.exprs.add(Expr::InRange {
                    ix: x.clone(),
                    lo: 0,
                    hi: wd,
                });
                let inside = self.exprs.add(Expr::And(in_y, in_x));
                let value = self.value(input, &[index[0].clone(), c, y.clamp_to(h), x.clamp_to(wd)]);
                let value = self.exprs.as_f32(value);
                let zero = self.exprs.constant(0.0);
                self.exprs.add(Expr::Select(inside, value, zero))
            }
            Prim::Fold2d(w) => {
                let patches = self.operand(id, 0);
                let (oh, ow) = {
                    let s = self.bound.shape(patches);
                    (s[1] as i64, s[2] as i64)
                };
                let channels = self.bound.shape(id)[1] as i64;
                let (k, s, p) = (w.kernel as i64, w.stride as i64, w.padding as i64);
                let mut total: Option<E> = None;
                for ki in 0..k {
                    for kj in 0..k {
                        let ty = index[2].add_constant(p - ki);
                        let tx = index[3].add_constant(p - kj);
                        let mut conditions = vec![
                            Expr::InRange {
                                ix: ty.clone(),
                                lo: 0,
                                hi: s * oh,
                            },
                            Expr::InRange {
                                ix: tx.clone(),
                                lo: 0,
                                hi: s * ow,
                            },
                        ];
                        if s > 1 {
                            conditions.push(Expr::InRange {
                                ix: ty.rem(s),
                                lo: 0,
                                hi: 1,
                            });
                            conditions.push(Expr::InRange {
                                ix: tx.rem(s),
                                lo: 0,
                                hi: 1,
                            });
                        }
                        let mut inside = self.exprs.add(Expr::True);
                        for condition in conditions {
                            let c = self.exprs.add(condition);
                            inside = self.exprs.add(Expr::And(inside, c));
                        }
                        if *self.exprs.get(inside) == Expr::False {
                            continue;
                        }
                        let feature = index[1].add_constant((ki * k + kj) * channels);
                        let at = [
                            index[0].clone(),
                            ty.div(s).clamp_to(oh),
                            tx.div(s).clamp_to(ow),
                            feature,
                        ];
                        let value = self.value(patches, &at);
                        let value = self.exprs.as_f32(value);
                        let zero = self.exprs.constant(0.0);
                        let term = self.exprs.add(Expr::Select(inside, value, zero));
                        total = Some(match total {
                            None => term,
                            Some(sum) => self.exprs.add(Expr::Binary(BinaryOp::Add, sum, term)),
                        });
                    }
                }
                total.unwrap_or_else(|| self.exprs.constant(0.0))
            }
            Prim::Reduce { .. } | Prim::ArgMax { .. } | Prim::MatMul | Prim::ScatterRows { .. } => {
                // Always materialized: reaching one here is a fusion bug.
                let offset = flat(index, &shape);
                self.exprs.add(Expr::Load { buffer: id, offset })
            }
        }
    }

    /// `table[inner]` where the id is valid, else 0.
    fn guarded_gather(&mut self, table: NodeId, inner: &[Ix], id_value: E, size: i64) -> E {
        let valid = self.exprs.add(Expr::IdValid { expr: id_value, size });
        let x = self.value(table, inner);
        let x = self.exprs.as_f32(x);
        let zero = self.exprs.constant(0.0);
        self.exprs.add(Expr::Select(valid, x, zero))
    }
}
