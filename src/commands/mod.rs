//! The commands: each turns parsed arguments into work on a communicator.
//!
//! Errors that can differ between ranks pass through [`Comm::agree`] so that
//! every rank stops together and rank 0 can report the cause once.

mod diagram;
mod info;
mod pack;
mod ph;
mod ph_collection;
mod synth;

use std::path::Path;

use crate::cli::{Cli, Command, CommonArgs, DataCommand, DiagramCommand};
use crate::config::{Config, Override};
use crate::dist::Comm;
use crate::error::Result;
use crate::runtime;
use crate::train::trainer::Finish;

/// How a command ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The work is done.
    Done,
    /// Stopped early on a signal with its state saved (`tglml train`);
    /// the process exits with [`Exit::INTERRUPTED_STATUS`].
    Interrupted,
}

impl Exit {
    /// The exit status of an interrupted run: 75 (EX_TEMPFAIL, "try
    /// again"), which slurm/train.sbatch reads as "requeue and resume".
    pub const INTERRUPTED_STATUS: u8 = 75;
}

/// Runs the command of `cli` on `comm`.
pub fn run(cli: Cli, comm: &Comm) -> Result<Exit> {
    let done = match cli.command {
        Command::Data(DataCommand::Synth(args)) => {
            let flags = args.flags();
            let Some(setup) = prepare(comm, &args.common, flags, "data synth", Some(&args.out))?
            else {
                return Ok(Exit::Done);
            };
            synth::run(comm, &setup, &args.out)
        }
        Command::Data(DataCommand::Pack(args)) => {
            let flags = args.flags();
            let Some(setup) = prepare(comm, &args.common, flags, "data pack", Some(&args.out))?
            else {
                return Ok(Exit::Done);
            };
            pack::run(comm, &setup, &args)
        }
        Command::Ph(args) => {
            let flags = args.flags();
            let Some(setup) = prepare(comm, &args.common, flags, "ph", Some(&args.out))? else {
                return Ok(Exit::Done);
            };
            ph::run(comm, &setup, &args)
        }
        Command::Diagram(DiagramCommand::Distance(args)) => {
            let flags = args.flags();
            let Some(setup) = prepare(
                comm,
                &args.common,
                flags,
                "diagram distance",
                args.out.as_deref(),
            )?
            else {
                return Ok(Exit::Done);
            };
            diagram::distance(comm, &setup, &args)
        }
        Command::Diagram(DiagramCommand::Summarize(args)) => {
            let flags = args.flags();
            let Some(setup) = prepare(
                comm,
                &args.common,
                flags,
                "diagram summarize",
                Some(&args.out),
            )?
            else {
                return Ok(Exit::Done);
            };
            diagram::summarize(comm, &setup, &args)
        }
        Command::Train(args) => {
            let flags = args.flags();
            let Some(setup) = prepare(comm, &args.common, flags, "train", Some(&args.out))? else {
                return Ok(Exit::Done);
            };
            std::fs::create_dir_all(&args.out)
                .map_err(|e| crate::error::Error::io(&args.out, "creating the folder", e))?;
            let stop = runtime::stop_flag()?;
            let finish = crate::train::trainer::run(
                comm,
                &setup.config,
                setup.threads,
                &args.out,
                args.resume,
                &stop,
            )?;
            let (message, exit) = match finish {
                Finish::Complete(s) => (s, Exit::Done),
                Finish::Interrupted(s) => (s, Exit::Interrupted),
            };
            if comm.is_root() {
                eprintln!("{message}");
            }
            return Ok(exit);
        }
        Command::Info(common) => {
            let Some(setup) = prepare(comm, &common, Vec::new(), "info", None)? else {
                return Ok(Exit::Done);
            };
            info::run(comm, &setup)
        }
    };
    done.map(|()| Exit::Done)
}

/// What every command starts from.
pub struct Setup {
    /// The effective configuration.
    pub config: Config,
    /// Threads per rank in use.
    pub threads: usize,
    /// The command's name (`data synth`), for output stamps.
    pub command: &'static str,
}

/// Loads the configuration on every rank; with `--dry-run` prints it (rank
/// 0) and returns `None`; otherwise sizes the thread pools.
fn prepare(
    comm: &Comm,
    common: &CommonArgs,
    flags: Vec<Override>,
    command: &'static str,
    out: Option<&Path>,
) -> Result<Option<Setup>> {
    let config = comm.agree(common.load(flags))?;
    if common.dry_run {
        if comm.is_root() {
            println!("# effective configuration of `tglml {command}`");
            if let Some(out) = out {
                println!("# output: {}", out.display());
            }
            print!("{}", config.to_toml());
        }
        return Ok(None);
    }
    let threads = runtime::threads_per_rank(config.run.threads);
    runtime::init_threads(threads);
    Ok(Some(Setup {
        config,
        threads,
        command,
    }))
}
