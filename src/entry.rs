//! The start of both binaries, `tglml` and tglml-torch: parse, hand the
//! libtorch commands to tglml-torch, initialise MPI once (only under a
//! launcher), run, report errors once.

use std::process::ExitCode;

use crate::cli::Cli;
use crate::commands::{Exit, Torch};
use crate::dist::Comm;
use crate::Error;

/// Runs the command line of this process; `torch` runs the commands that
/// need libtorch (or hands them over).
pub fn main(torch: &dyn Torch) -> ExitCode {
    let parsed = Cli::parse_args();
    // A command that needs libtorch continues in tglml-torch, before
    // anything (MPI above all) is initialised here.
    if parsed.as_ref().is_ok_and(|cli| cli.command.needs_torch()) {
        torch.hand_off();
    }
    // MPI only under a launcher (mpirun, srun, mpiexec): a process started
    // alone is one rank, and does not pay for MPI's singleton start-up.
    let universe = if crate::dist::launched_by_mpi() {
        match mpi::initialize_with_threading(mpi::Threading::Funneled) {
            Some((u, _)) => Some(u),
            None => {
                eprintln!("tglml: error: MPI could not be initialised");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let comm = universe.as_ref().map_or_else(Comm::solo, Comm::world);
    // From here on a panic on any rank ends every rank of the job.
    crate::runtime::install_panic_hook(comm.rank(), universe.is_some());
    // Every rank must have parsed its arguments before any rank goes on to
    // a collective: one rank's typo must not leave the others waiting.
    let agreed = comm.agree(match &parsed {
        Ok(_) => Ok(()),
        Err(e) if e.exit_code() == 0 => Ok(()), // --help, --version
        Err(e) => Err(Error::invalid(
            "command line",
            e.render().to_string().trim_end().to_string(),
        )),
    });
    let code = match (parsed, agreed) {
        // --help and --version land here too, with exit code 0.
        (Err(e), _) if e.exit_code() == 0 => {
            if comm.is_root() {
                let _ = e.print();
            }
            0
        }
        (Err(e), _) if comm.size() == 1 => {
            let _ = e.print();
            u8::try_from(e.exit_code()).unwrap_or(2)
        }
        (Err(_), agreed) | (Ok(_), agreed @ Err(_)) => {
            if let (true, Err(e)) = (comm.is_root(), agreed) {
                eprintln!("tglml: error: {}", crate::error::report(&e));
            }
            2
        }
        (Ok(cli), Ok(())) => match crate::commands::run(cli, &comm, torch) {
            Ok(Exit::Done) => 0,
            Ok(Exit::Interrupted) => Exit::INTERRUPTED_STATUS,
            Err(e) => {
                if comm.is_root() {
                    eprintln!("tglml: error: {}", crate::error::report(&e));
                }
                1
            }
        },
    };
    drop(comm);
    drop(universe); // MPI_Finalize before exit
    ExitCode::from(code)
}
