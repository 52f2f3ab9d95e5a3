//! Data-parallel training under `mpirun`: `mpirun -np P nnc run FILE`
//! starts P processes that train one model. Each compiles the same step
//! for its share of every batch (the batch divided by P), and the step sums
//! the loss, the gradients and the model states' updates over the
//! processes (`all_reduce`, one call a step) before the update, so every
//! process holds the same parameters after every step — those one process
//! would reach on the whole batch, up to the order of the sums.
//!
//! In: the launcher's environment (Open MPI's `OMPI_COMM_WORLD_SIZE`,
//! MPICH's `PMI_SIZE`). Out: a [`World`] whose [`Handle`] the session
//! gives the step; process 0 writes the run directory and prints, the others
//! work in a scratch directory they remove. The MPI library comes through
//! the `mpi` cargo feature (rsmpi); without it a launch by `mpirun` is an
//! error that says how to build with it.

use std::collections::HashMap;

use crate::check::data::BATCH;
use crate::check::dims::Dim;
use crate::collective::Handle;
use crate::ir::Graph;
use crate::prim::Prim;
#[cfg(feature = "mpi")]
use {crate::collective::Collective, std::sync::Arc};

/// The processes of this run, and this one's place among them. Holds MPI
/// open while it lives (dropping it finalizes MPI).
pub struct World {
    pub rank: usize,
    pub size: usize,
    pub handle: Option<Handle>,
    #[cfg(feature = "mpi")]
    _universe: Option<mpi::environment::Universe>,
}

impl World {
    /// A run of one process.
    pub fn single() -> World {
        World {
            rank: 0,
            size: 1,
            handle: None,
            #[cfg(feature = "mpi")]
            _universe: None,
        }
    }

    /// Whether this process writes the run directory and prints.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }
}

/// How many processes the launcher started, if this process was started
/// by one (`mpirun` of Open MPI or MPICH).
pub fn launched_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .and_then(|size| size.trim().parse().ok())
}

/// Threads for each process's step when `mpirun` put several processes on
/// this machine and `NNC_THREADS` does not say: the machine's cores shared
/// out among them (Open MPI's `OMPI_COMM_WORLD_LOCAL_SIZE`, MPICH's
/// `MPI_LOCALNRANKS`), at least one each.
pub fn threads_per_process() -> Option<usize> {
    if std::env::var_os("NNC_THREADS").is_some() {
        return None;
    }
    let local: usize = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .and_then(|size| size.trim().parse().ok())
        .filter(|&size| size > 1)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some((cores / local).max(1))
}

/// Joins the run's processes: one process unless `mpirun` started several.
pub fn join() -> Result<World, String> {
    match launched_size() {
        None | Some(0 | 1) => Ok(World::single()),
        Some(size) => join_mpi(size),
    }
}

#[cfg(feature = "mpi")]
fn join_mpi(launched: usize) -> Result<World, String> {
    use mpi::traits::Communicator;
    let universe = mpi::initialize().ok_or("MPI could not be initialized (it was already)")?;
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    if size != launched {
        return Err(format!(
            "mpirun started {launched} processes, but MPI's world has {size}: is nnc built against the MPI library of this `mpirun`?"
        ));
    }
    Ok(World {
        rank,
        size,
        handle: Some(Handle(Arc::new(Mpi { rank, size }))),
        _universe: Some(universe),
    })
}

#[cfg(not(feature = "mpi"))]
fn join_mpi(launched: usize) -> Result<World, String> {
    Err(format!(
        "this process is one of {launched} that mpirun started, but this nnc was built without MPI; \
         build it with `cargo build --release --features mpi` (Debian: `apt-get install libopenmpi-dev libclang-dev`)"
    ))
}

/// Sums over `MPI_COMM_WORLD`. Called by one thread of each process (the
/// step's thread 0, the thread that initialized MPI).
#[cfg(feature = "mpi")]
struct Mpi {
    rank: usize,
    size: usize,
}

#[cfg(feature = "mpi")]
impl Collective for Mpi {
    fn size(&self) -> usize {
        self.size
    }

    fn rank(&self) -> usize {
        self.rank
    }

    fn sum_f32(&self, values: &mut [f32]) {
        sum_over_world(values);
    }

    fn sum_f64(&self, values: &mut [f64]) {
        sum_over_world(values);
    }
}

/// `MPI_Allreduce` of `values` with `MPI_SUM` over `MPI_COMM_WORLD`, the
/// sum left in `values`.
#[cfg(feature = "mpi")]
fn sum_over_world<T: mpi::datatype::Equivalence + Clone>(values: &mut [T]) {
    use mpi::traits::CommunicatorCollectives;
    let mine = values.to_vec();
    mpi::topology::SimpleCommunicator::world().all_reduce_into(
        &mine[..],
        values,
        mpi::collective::SystemOperation::sum(),
    );
}

/// The share of a batch of `batch` examples that process `rank` of `size`
/// trains on: whole examples, in order, the same count in every process.
pub fn share(batch: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let each = batch / size.max(1);
    rank * each..(rank + 1) * each
}

/// Makes the random draws of process `rank`'s step (its share of `local`
/// examples of every batch) those one process draws for the same rows:
/// each draw over the batch (a `Random` node whose first axis is the batch,
/// dropout's mask) starts at the draw of the share's first row. Draws of
/// other shapes are the same in every process already.
pub fn draw_as_one_process(step: &mut Graph, rank: usize, local: usize) {
    let dims = HashMap::from([(BATCH.to_string(), local as i64)]);
    for id in step.topo_order() {
        let node = step.node(id);
        let Prim::Random { dist, stream, .. } = node.op else {
            continue;
        };
        if node.shape.first() != Some(&Dim::symbol(BATCH)) {
            continue;
        }
        let Ok(shape) = crate::interp::eval_shape(&node.shape, &dims) else {
            continue;
        };
        let count: usize = shape.iter().product();
        step.node_mut(id).op = Prim::Random {
            dist,
            stream,
            offset: (rank * count) as u64,
        };
    }
}
