//! The communicator: every MPI call of TGLML lives here.
//!
//! [`Comm`] is either a real MPI communicator or a single process without MPI
//! ([`Comm::solo`]), so that library code and unit tests run the same with
//! one rank, with or without `mpirun`. Counts are checked before they are
//! handed to MPI's 32-bit interfaces.

use mpi::datatype::PartitionMut;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;

use crate::error::{Error, Result};

pub mod jobs;
pub mod landmarks;

/// A communicator: one rank of a group of `size` ranks.
pub struct Comm {
    mpi: Option<SimpleCommunicator>,
}

impl Comm {
    /// A single process, no MPI (tests, library use).
    pub fn solo() -> Self {
        Comm { mpi: None }
    }

    /// The world communicator of an initialised MPI universe.
    pub fn world(universe: &mpi::environment::Universe) -> Self {
        Comm {
            mpi: Some(universe.world()),
        }
    }

    /// Whether this communicator is MPI's (false for [`Comm::solo`]).
    pub fn is_mpi(&self) -> bool {
        self.mpi.is_some()
    }

    /// This process's rank, 0-based.
    pub fn rank(&self) -> usize {
        self.mpi.as_ref().map_or(0, |c| c.rank() as usize)
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.mpi.as_ref().map_or(1, |c| c.size() as usize)
    }

    /// Rank 0 prints progress and writes shared outputs.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Waits for every rank.
    pub fn barrier(&self) {
        if let Some(c) = &self.mpi {
            c.barrier();
        }
    }

    /// Concatenates every rank's `local` slice, in rank order, on rank 0.
    /// Rank 0 gets `Some(all)`; the other ranks get `None`.
    pub fn gather_concat<T>(&self, local: &[T]) -> Result<Option<Vec<T>>>
    where
        T: Equivalence + Clone + Default,
    {
        let Some(c) = &self.mpi else {
            return Ok(Some(local.to_vec()));
        };
        // An empty slice points at 0x1 (NonNull::dangling for bytes), which
        // is OpenMPI's MPI_IN_PLACE: a non-root rank sending it fails with
        // MPI_ERR_ARG. Send empty contributions from a real allocation.
        let holder: Vec<T>;
        let local = if local.is_empty() {
            holder = Vec::with_capacity(1);
            &holder[..]
        } else {
            local
        };
        let root = c.process_at_rank(0);
        let n = to_count(local.len(), "gather: elements sent by one rank")?;
        if c.rank() == 0 {
            let mut counts = vec![0 as Count; c.size() as usize];
            root.gather_into_root(&n, &mut counts[..]);
            let mut displs = Vec::with_capacity(counts.len());
            let mut total: usize = 0;
            for &k in &counts {
                displs.push(to_count(total, "gather: total elements")?);
                total += k as usize;
            }
            let mut all = Vec::with_capacity(total.max(1));
            all.resize(total, T::default());
            {
                let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
                root.gather_varcount_into_root(local, &mut part);
            }
            Ok(Some(all))
        } else {
            root.gather_into(&n);
            root.gather_varcount_into(local);
            Ok(None)
        }
    }

    /// Gives every rank rank 0's `data` (other ranks' contents are replaced).
    pub fn broadcast_bytes(&self, data: &mut Vec<u8>) -> Result<()> {
        let Some(c) = &self.mpi else { return Ok(()) };
        let root = c.process_at_rank(0);
        let mut len = data.len() as u64;
        root.broadcast_into(&mut len);
        data.resize(len as usize, 0);
        for chunk in data.chunks_mut(1 << 30) {
            root.broadcast_into(chunk);
        }
        Ok(())
    }

    /// The element-wise sum of `values` over all ranks, in place.
    pub fn all_reduce_sum_f64(&self, values: &mut [f64]) {
        if let Some(c) = &self.mpi {
            let send = values.to_vec();
            c.all_reduce_into(&send[..], values, mpi::collective::SystemOperation::sum());
        }
    }

    /// The maximum of `value` over all ranks.
    pub fn all_reduce_max_u64(&self, value: u64) -> u64 {
        let Some(c) = &self.mpi else { return value };
        let mut out = 0u64;
        c.all_reduce_into(&value, &mut out, mpi::collective::SystemOperation::max());
        out
    }

    /// One value from every rank, in rank order, on every rank.
    pub fn all_gather_u64(&self, value: u64) -> Vec<u64> {
        let Some(c) = &self.mpi else {
            return vec![value];
        };
        let mut out = vec![0u64; c.size() as usize];
        c.all_gather_into(&value, &mut out[..]);
        out
    }

    /// One value from every rank, in rank order, on every rank.
    pub fn all_gather_f64(&self, value: f64) -> Vec<f64> {
        let Some(c) = &self.mpi else {
            return vec![value];
        };
        let mut out = vec![0f64; c.size() as usize];
        c.all_gather_into(&value, &mut out[..]);
        out
    }

    /// Every rank's `local` slice (all of the same length), concatenated in
    /// rank order, on every rank.
    pub fn all_gather_f64_slice(&self, local: &[f64]) -> Result<Vec<f64>> {
        let Some(c) = &self.mpi else {
            return Ok(local.to_vec());
        };
        to_count(local.len() * c.size() as usize, "all-gather: elements")?;
        let mut out = vec![0f64; local.len() * c.size() as usize];
        if !local.is_empty() {
            c.all_gather_into(local, &mut out[..]);
        }
        Ok(out)
    }

    /// Every rank's `local` slice (lengths may differ), concatenated in rank
    /// order, on every rank.
    pub fn all_gather_varcount_f64(&self, local: &[f64]) -> Result<Vec<f64>> {
        let Some(c) = &self.mpi else {
            return Ok(local.to_vec());
        };
        let counts: Vec<Count> = self
            .all_gather_u64(local.len() as u64)
            .into_iter()
            .map(|k| to_count(k as usize, "all-gather: elements sent by one rank"))
            .collect::<Result<_>>()?;
        let mut displs = Vec::with_capacity(counts.len());
        let mut total = 0usize;
        for &k in &counts {
            displs.push(to_count(total, "all-gather: total elements")?);
            total += k as usize;
        }
        // As in gather_concat: never hand MPI an empty slice's dangling
        // pointer (OpenMPI reads it as MPI_IN_PLACE).
        let holder: Vec<f64>;
        let local = if local.is_empty() {
            holder = Vec::with_capacity(1);
            &holder[..]
        } else {
            local
        };
        let mut all = Vec::with_capacity(total.max(1));
        all.resize(total, 0.0);
        {
            let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            c.all_gather_varcount_into(local, &mut part);
        }
        Ok(all)
    }

    /// Gives every rank the contents of `data` on rank `root` (same length
    /// on every rank).
    pub fn broadcast_f64_from(&self, root: usize, data: &mut [f64]) -> Result<()> {
        let Some(c) = &self.mpi else { return Ok(()) };
        to_count(data.len(), "broadcast: elements")?;
        c.process_at_rank(root as i32).broadcast_into(data);
        Ok(())
    }

    /// The underlying MPI communicator (None for a solo process), for the
    /// point-to-point progress messages of long jobs.
    pub(crate) fn raw(&self) -> Option<&SimpleCommunicator> {
        self.mpi.as_ref()
    }

    /// Makes a local outcome collective: if any rank failed, every rank
    /// returns an error. Rank 0's error carries the message of the lowest
    /// failing rank (its own if it failed), so that `main` prints the cause
    /// once. Call it on every rank at the same point.
    pub fn agree<T>(&self, local: Result<T>) -> Result<T> {
        let Some(c) = &self.mpi else { return local };
        let failed = u8::from(local.is_err());
        let mut flags = vec![0u8; c.size() as usize];
        c.all_gather_into(&failed, &mut flags[..]);
        let Some(first) = flags.iter().position(|&f| f != 0) else {
            return local;
        };
        // Bring the lowest failing rank's message to rank 0.
        let message = match &local {
            Err(e) if c.rank() as usize == first => crate::error::report(e).into_bytes(),
            _ => Vec::new(),
        };
        let gathered = self.gather_concat(&message)?;
        // A rank that failed keeps its own error; the others report the
        // first failure (only rank 0 has its text; only rank 0 prints).
        match local {
            Err(e) => Err(e),
            Ok(_) => Err(Error::Remote {
                rank: first,
                message: gathered
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .unwrap_or_default(),
            }),
        }
    }
}

/// Whether an MPI launcher started this process, so that `main` should
/// initialise MPI: OpenMPI's mpirun (`OMPI_COMM_WORLD_SIZE`), PMIx (srun
/// --mpi=pmix, OpenMPI 5: `PMIX_RANK`), PMI-1/2 (MPICH's and Intel MPI's
/// Hydra, srun --mpi=pmi2: `PMI_RANK`, `PMI_SIZE`, `PMI_FD`), or a Slurm
/// step of more than one task. `TGLML_MPI=always` or `never` overrides.
/// A process started alone runs as one rank without MPI ([`Comm::solo`]).
pub fn launched_by_mpi() -> bool {
    match std::env::var("TGLML_MPI").as_deref().map(str::trim) {
        Ok("always") => return true,
        Ok("never") => return false,
        _ => {}
    }
    let set = |n: &str| std::env::var_os(n).is_some_and(|v| !v.is_empty());
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMIX_RANK",
        "PMI_RANK",
        "PMI_SIZE",
        "PMI_FD",
    ]
    .iter()
    .any(|n| set(n))
        || env_usize(&["SLURM_STEP_NUM_TASKS"]).is_some_and(|n| n > 1)
}

/// This process's rank on its node, from the launcher's environment (OpenMPI,
/// Slurm, MPICH/PMI); 0 when none is set. Used to pick a GPU.
pub fn local_rank() -> usize {
    env_usize(&[
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "SLURM_LOCALID",
        "MPI_LOCALRANKID",
        "PMI_LOCAL_RANK",
    ])
    .unwrap_or(0)
}

/// The number of ranks on this node, from the launcher's environment; 1 when
/// none is set.
pub fn local_size() -> usize {
    env_usize(&[
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "MPI_LOCALNRANKS",
        "PMI_LOCAL_SIZE",
        "SLURM_NTASKS_PER_NODE",
    ])
    .filter(|&n| n > 0)
    .unwrap_or(1)
}

fn env_usize(names: &[&str]) -> Option<usize> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().and_then(|v| v.trim().parse().ok()))
}

/// 64-bit FNV-1a: a fast hash of bytes that is the same on every rank
/// and machine, for comparing state across ranks (parameters, the
/// effective configuration).
pub struct Fnv1a(u64);

impl Fnv1a {
    /// The empty hash.
    pub fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    /// Adds `bytes`.
    pub fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash of everything added.
    pub fn finish(&self) -> u64 {
        self.0
    }

    /// The hash of `bytes` alone.
    pub fn of(bytes: &[u8]) -> u64 {
        let mut h = Fnv1a::new();
        h.eat(bytes);
        h.finish()
    }
}

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a::new()
    }
}

/// Converts a length to MPI's count type, refusing what does not fit.
fn to_count(n: usize, what: &str) -> Result<Count> {
    Count::try_from(n)
        .map_err(|_| Error::Mpi(format!("{what}: {n} exceeds MPI's limit of {}", Count::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solo_is_one_rank() {
        let c = Comm::solo();
        assert_eq!((c.rank(), c.size(), c.is_root()), (0, 1, true));
        assert_eq!(
            c.gather_concat(&[1.0f64, 2.0]).unwrap(),
            Some(vec![1.0, 2.0])
        );
        let mut v = vec![1.5, 2.5];
        c.all_reduce_sum_f64(&mut v);
        assert_eq!(v, vec![1.5, 2.5]);
        assert_eq!(c.all_reduce_max_u64(7), 7);
        assert!(c.agree(Err::<(), _>(Error::Mpi("x".into()))).is_err());
    }

    #[test]
    fn counts_are_checked() {
        assert!(to_count(usize::MAX, "x").is_err());
        assert_eq!(to_count(5, "x").unwrap(), 5);
    }
}
