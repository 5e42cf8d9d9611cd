//! The commands: each turns parsed arguments into work on a communicator.
//!
//! Errors that can differ between ranks pass through [`Comm::agree`] so that
//! every rank stops together and rank 0 can report the cause once.

mod diagram;
mod figures;
mod info;
mod pack;
mod ph;
mod ph_collection;
mod report;
mod synth;
mod torch;

use std::path::Path;

use crate::cli::{Cli, Command, CommonArgs, DataCommand, DiagramCommand};
use crate::config::{Config, Override};
use crate::dist::Comm;
use crate::error::Result;
use crate::runtime;
pub use torch::{HandOff, Torch};

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

/// Runs the command of `cli` on `comm`; the commands that need libtorch
/// through `torch`.
pub fn run(cli: Cli, comm: &Comm, torch: &dyn Torch) -> Result<Exit> {
    // What every rank must agree on besides the configuration: the
    // command and its arguments as parsed.
    let args = format!("{:#?}", cli.command);
    let done = match cli.command {
        Command::Data(DataCommand::Synth(a)) => {
            let Some(setup) = prepare(
                comm,
                &a.common,
                a.flags(),
                "data synth",
                Some(&a.out),
                &args,
            )?
            else {
                return Ok(Exit::Done);
            };
            check_outputs(comm, &[&a.out], &[])?;
            synth::run(comm, &setup, &a.out)
        }
        Command::Data(DataCommand::Pack(a)) => {
            let Some(setup) =
                prepare(comm, &a.common, a.flags(), "data pack", Some(&a.out), &args)?
            else {
                return Ok(Exit::Done);
            };
            let mut inputs: Vec<&Path> = a.sources.iter().map(|p| p.as_path()).collect();
            inputs.extend(a.labels.as_deref());
            check_outputs(comm, &[&a.out], &inputs)?;
            pack::run(comm, &setup, &a)
        }
        Command::Ph(a) => {
            let Some(setup) = prepare(comm, &a.common, a.flags(), "ph", Some(&a.out), &args)?
            else {
                return Ok(Exit::Done);
            };
            check_outputs(comm, &[&a.out], &[&a.input])?;
            ph::run(comm, &setup, &a)
        }
        Command::Diagram(DiagramCommand::Distance(a)) => {
            let Some(setup) = prepare(
                comm,
                &a.common,
                a.flags(),
                "diagram distance",
                a.out.as_deref(),
                &args,
            )?
            else {
                return Ok(Exit::Done);
            };
            if let Some(out) = &a.out {
                check_outputs(comm, &[out], &[&a.a, &a.b])?;
            }
            diagram::distance(comm, &setup, &a)
        }
        Command::Diagram(DiagramCommand::Summarize(a)) => {
            let Some(setup) = prepare(
                comm,
                &a.common,
                a.flags(),
                "diagram summarize",
                Some(&a.out),
                &args,
            )?
            else {
                return Ok(Exit::Done);
            };
            check_outputs(comm, &[&a.out], &[&a.input])?;
            diagram::summarize(comm, &setup, &a)
        }
        Command::Train(a) => {
            let Some(setup) = prepare(comm, &a.common, a.flags(), "train", Some(&a.out), &args)?
            else {
                return Ok(Exit::Done);
            };
            return torch.train(comm, &setup, &a);
        }
        Command::Sample(a) => {
            let Some(setup) = prepare(comm, &a.common, a.flags(), "sample", Some(&a.out), &args)?
            else {
                return Ok(Exit::Done);
            };
            torch.sample(comm, &setup, &a)
        }
        Command::Interpolate(a) => {
            let Some(setup) = prepare(
                comm,
                &a.common,
                a.flags(),
                "interpolate",
                Some(&a.out),
                &args,
            )?
            else {
                return Ok(Exit::Done);
            };
            torch.interpolate(comm, &setup, &a)
        }
        Command::Eval(a) => {
            let Some(setup) = prepare(comm, &a.common, a.flags(), "eval", Some(&a.out), &args)?
            else {
                return Ok(Exit::Done);
            };
            torch.eval(comm, &setup, &a)
        }
        Command::Report(a) => {
            let files = report::files(&a.out);
            let Some(setup) = prepare(
                comm,
                &a.common,
                Vec::new(),
                "report",
                Some(&files[0]),
                &args,
            )?
            else {
                return Ok(Exit::Done);
            };
            let outs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
            let ins: Vec<&Path> = a.dirs.iter().map(|p| p.as_path()).collect();
            check_outputs(comm, &outs, &ins)?;
            report::run(comm, &setup, &a)
        }
        Command::Info(common) => {
            let Some(setup) = prepare(comm, &common, Vec::new(), "info", None, &args)? else {
                return Ok(Exit::Done);
            };
            info::run(comm, &setup, torch)
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
    /// Set by the first stop signal in a command that stops at a safe
    /// point (`tglml train`); the others end at once on a signal
    /// ([`runtime::install_signals`]).
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Loads the configuration on every rank and checks that every rank has
/// the same configuration and arguments; with `--dry-run` prints it (rank
/// 0) and returns `None`; otherwise checks and sets the memory budget and
/// the thread count, and installs the signal handling: temporary files
/// removed and the process ended, or (`tglml train`) a stop flag.
pub fn prepare(
    comm: &Comm,
    common: &CommonArgs,
    flags: Vec<Override>,
    command: &'static str,
    out: Option<&Path>,
    args: &str,
) -> Result<Option<Setup>> {
    let config = comm.agree(common.load(flags))?;
    runtime::test_panic_point(comm.rank());
    ranks_agree(comm, &format!("{}\n{args}", config.to_toml()))?;
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
    comm.agree(crate::guard::configure(config.run.memory_budget_gib))?;
    comm.agree(crate::guard::check_threads(config.run.threads))?;
    let threads = runtime::threads_per_rank(config.run.threads);
    runtime::init_threads(threads);
    let stop = comm.agree(runtime::install_signals(command == "train"))?;
    Ok(Some(Setup {
        config,
        threads,
        command,
        stop,
    }))
}

/// Runs `write` on rank 0 while the other ranks wait for its outcome, so
/// that a failure there stops every rank; rank 0 prints the summary it
/// returns.
pub fn on_root(comm: &Comm, write: impl FnOnce() -> Result<String>) -> Result<()> {
    let outcome = if comm.is_root() {
        write()
    } else {
        Ok(String::new())
    };
    let summary = comm.agree(outcome)?;
    if comm.is_root() {
        eprintln!("{summary}");
    }
    Ok(())
}

/// Refuses, on rank 0 (which writes every output) and before any work,
/// outputs that are inputs, folders, or in folders that cannot be written
/// ([`crate::io::output::check`]); every rank stops together.
pub fn check_outputs(comm: &Comm, outputs: &[&Path], inputs: &[&Path]) -> Result<()> {
    comm.agree(if comm.is_root() {
        outputs
            .iter()
            .try_for_each(|o| crate::io::output::check(o, inputs))
    } else {
        Ok(())
    })
}

/// Stops every rank, with a message naming the ranks and the first line
/// that differs, unless `text` (the parsed arguments and the effective
/// configuration) is the same on every rank: ranks that train different
/// networks or read different inputs would otherwise corrupt each other's
/// messages or silently compute something else.
fn ranks_agree(comm: &Comm, text: &str) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    let hashes = comm.all_gather_u64(crate::dist::Fnv1a::of(text.as_bytes()));
    let Some(other) = hashes.iter().position(|&h| h != hashes[0]) else {
        return Ok(());
    };
    // Bring rank 0's and the first differing rank's text together on rank
    // 0 (every rank takes part; only those two send anything).
    let mine = if comm.rank() == 0 || comm.rank() == other {
        text.as_bytes().to_vec()
    } else {
        Vec::new()
    };
    let all = comm.gather_concat(&mine)?;
    let detail = all.map(|bytes| -> String {
        let both = String::from_utf8_lossy(&bytes).into_owned();
        let (a, b) = both.split_at(text.len().min(both.len()));
        // The first line that differs, under the last TOML section header
        // or argument block before it.
        let mut section: Vec<&str> = Vec::new();
        for (x, y) in a.lines().zip(b.lines()) {
            if x != y {
                let (x, y) = (x.trim(), y.trim());
                let place = match section.last() {
                    None => String::new(),
                    Some(s) => format!("in `{s}`: "),
                };
                return format!("{place}rank 0 has `{x}`, rank {other} has `{y}`");
            }
            let t = x.trim();
            if t.starts_with('[') {
                section = vec![t];
            } else if t.ends_with('{') {
                section.push(t.trim_end_matches('{').trim());
            } else if t.starts_with('}') {
                section.pop();
            }
        }
        "one has more lines than the other".to_string()
    });
    Err(crate::error::Error::invalid(
        "ranks",
        format!(
            "the ranks were started with different arguments or configurations ({}); every rank of a job must run the same command",
            detail.unwrap_or_default()
        ),
    ))
}
