//! The `tglml` binary: parse, initialise MPI once, run, report errors once.

use std::process::ExitCode;

use clap::Parser;
use tglml::cli::Cli;
use tglml::commands::Exit;
use tglml::dist::Comm;

fn main() -> ExitCode {
    let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Funneled) else {
        eprintln!("tglml: error: MPI could not be initialised");
        return ExitCode::FAILURE;
    };
    let comm = Comm::world(&universe);
    let code = match Cli::try_parse() {
        // --help and --version land here too, with exit code 0.
        Err(e) => {
            if comm.is_root() {
                let _ = e.print();
            }
            u8::try_from(e.exit_code()).unwrap_or(1)
        }
        Ok(cli) => match tglml::commands::run(cli, &comm) {
            Ok(Exit::Done) => 0,
            Ok(Exit::Interrupted) => Exit::INTERRUPTED_STATUS,
            Err(e) => {
                if comm.is_root() {
                    eprintln!("tglml: error: {e}");
                }
                1
            }
        },
    };
    drop(comm);
    drop(universe); // MPI_Finalize before exit
    ExitCode::from(code)
}
