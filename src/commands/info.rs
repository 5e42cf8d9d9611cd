//! `tglml info`: what this build and this launch look like.

use super::{Setup, Torch};
use crate::dist::{self, Comm};
use crate::error::Result;
use crate::io;

pub fn run(comm: &Comm, setup: &Setup, torch: &dyn Torch) -> Result<()> {
    // Every rank reports its local rank and CUDA view; rank 0 prints them.
    let (cuda, torch_line) = torch.info();
    let mine = format!(
        "rank {}: local rank {}, {} threads{}\n",
        comm.rank(),
        dist::local_rank(),
        setup.threads,
        cuda.map_or(String::new(), |n| format!(", {n} CUDA device(s)"))
    );
    let lines = comm.gather_concat(mine.as_bytes())?;
    if let Some(lines) = lines {
        println!("tglml {} (git {})", io::VERSION, io::GIT_REVISION);
        println!(
            "MPI: {} rank(s){}; {}",
            comm.size(),
            if comm.is_mpi() {
                ""
            } else {
                " (no launcher: MPI not initialised)"
            },
            mpi::environment::library_version()
                .unwrap_or_default()
                .trim()
        );
        let (maj, min, rel) = hdf5::library_version();
        println!("HDF5: {maj}.{min}.{rel}");
        println!("{torch_line}");
        print!("{}", String::from_utf8_lossy(&lines));
    }
    Ok(())
}
