//! Process set-up shared by every command: threads per rank, memory, and the
//! stop signals of long commands.

use crate::dist;

/// Threads per rank: the configured number, else `SLURM_CPUS_PER_TASK`, else
/// this node's cores divided by the ranks on it (at least 1).
pub fn threads_per_rank(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    if let Some(n) = std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return n;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / dist::local_size()).max(1)
}

/// Sizes rayon's global pool to `threads` (libtorch's intra-op pool is
/// sized by tglml-torch). Called once per process, before any parallel work.
pub fn init_threads(threads: usize) {
    // Fails only if the global pool was already built (a second call in the
    // same process, as in tests): the first size stays, which is harmless.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
}

/// This node's physical memory in bytes (Linux `/proc/meminfo`), if known.
pub fn node_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory budget in bytes: `gib` if positive, else half of this node's
/// memory divided by the ranks on it (8 GiB if unknown).
pub fn memory_budget_bytes(gib: f64) -> u64 {
    if gib > 0.0 {
        return (gib * (1u64 << 30) as f64) as u64;
    }
    let node = node_memory_bytes().unwrap_or(16 << 30);
    node / 2 / dist::local_size() as u64
}

/// This process's peak resident memory in bytes (Linux `VmHWM` of
/// `/proc/self/status`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Hands the free pages inside the C heap back to the system (glibc's
/// `malloc_trim(0)`; nothing elsewhere). glibc gives memory back only from
/// the top of its main heap, so a long run whose allocations interleave
/// (libtorch's tensors, a second thread's buffers) can hold gigabytes of
/// freed memory as resident: a training run was seen at 15 GB resident with
/// 80 MB in use, and killed for memory. [`MemoryTrim`] calls this every few
/// seconds of a long loop.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim only walks the allocator's own free lists
        // (under its locks) and may be called from any thread at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Calls [`return_free_memory`] from a loop at most once per `every`.
pub struct MemoryTrim {
    every: std::time::Duration,
    last: std::time::Instant,
}

impl MemoryTrim {
    /// A trim at most once per `every`, the first after `every`.
    pub fn new(every: std::time::Duration) -> Self {
        MemoryTrim {
            every,
            last: std::time::Instant::now(),
        }
    }

    /// Trims when `every` has passed since the last trim.
    pub fn tick(&mut self) {
        if self.last.elapsed() >= self.every {
            return_free_memory();
            self.last = std::time::Instant::now();
        }
    }
}

/// Prints (rank 0) every rank's peak resident memory, one line:
/// `LABEL: peak memory per rank (MiB): 512.3 301.2 …`. Collective.
pub fn report_peak_memory(comm: &dist::Comm, label: &str) {
    let all = comm.all_gather_u64(peak_rss_bytes().unwrap_or(0));
    if comm.is_root() {
        let v: Vec<String> = all
            .iter()
            .map(|&b| format!("{:.1}", b as f64 / (1u64 << 20) as f64))
            .collect();
        eprintln!("{label}: peak memory per rank (MiB): {}", v.join(" "));
    }
}

/// The signals that ask a long command to stop at its next safe point:
/// SIGUSR1 (what `#SBATCH --signal=B:USR1@60` sends before the wall-time
/// limit, forwarded to the ranks by mpirun), SIGTERM (`scancel`, the time
/// limit itself, pre-emption) and SIGINT (Ctrl-C).
pub const STOP_SIGNALS: &str = "SIGUSR1, SIGTERM or SIGINT";

/// Installs the signal handling of a command. SIGINT and SIGTERM end a
/// command that cannot stop early at once, after removing its temporary
/// files and the folders made for them ([`crate::io::output`]), with the
/// usual status (130, 143). A `stoppable` command (`tglml train`) is
/// asked to stop instead: the first of [`STOP_SIGNALS`] sets the returned
/// flag, which the command reads at its next safe point; a second SIGINT
/// or SIGTERM ends it at once, as above, for a user who does not want to
/// wait. The signals are handled on a thread of their own, so the cleanup
/// may take locks and touch files.
pub fn install_signals(
    stoppable: bool,
) -> crate::error::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    use std::sync::atomic::Ordering;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut wanted = vec![SIGINT, SIGTERM];
    if stoppable {
        wanted.push(SIGUSR1);
    }
    let mut signals = signal_hook::iterator::Signals::new(&wanted).map_err(|e| {
        crate::error::Error::invalid("signal handlers", format!("could not be installed: {e}"))
    })?;
    let flag = std::sync::Arc::clone(&stop);
    std::thread::Builder::new()
        .name("tglml-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if stoppable && (sig == SIGUSR1 || !flag.swap(true, Ordering::SeqCst)) {
                    flag.store(true, Ordering::SeqCst);
                    continue;
                }
                crate::io::output::remove_tracked();
                // _exit: no atexit handlers (HDF5's would run beside a
                // thread that may be inside the library).
                signal_hook::low_level::exit(128 + sig);
            }
        })
        .map_err(|e| crate::error::Error::invalid("signal handlers", format!("no thread: {e}")))?;
    Ok(stop)
}

thread_local! {
    /// Set while [`fallible`] runs on this thread: the panic hook then lets
    /// the panic unwind to it instead of ending the job.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic on this thread inside it into an error naming
/// `what`. For calls into libtorch, whose bindings panic on an allocation or
/// shape failure: the error then reaches every rank through
/// [`crate::dist::Comm::agree`] and the job ends with a message, not an
/// abort. A panic on another thread still ends the job (panic hook).
pub fn fallible<T>(what: &str, f: impl FnOnce() -> T) -> crate::error::Result<T> {
    let was = CATCHING.with(|c| c.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was));
    r.map_err(|p| {
        crate::error::Error::invalid(
            what,
            format!(
                "libtorch failed: {}",
                torch_message(&panic_text(p.as_ref()))
            ),
        )
    })
}

/// libtorch's own words from a tch panic message: without the `unwrap`
/// wrapper and the C++ stack trace that follows "Exception raised from"
/// (the message is the Debug form of tch's error, newlines escaped).
fn torch_message(text: &str) -> String {
    let inner = text
        .split_once("Torch(\"")
        .map_or(text, |(_, rest)| rest.trim_end_matches("\")"));
    let end = ["\\nException raised from", "\nException raised from"]
        .iter()
        .filter_map(|m| inner.find(m))
        .min()
        .unwrap_or(inner.len());
    inner[..end].trim().to_string()
}

/// The message of a panic payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// This process's MPI rank for messages of the panic hook (set by `main`).
static RANK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Whether `main` initialised MPI, so that a panic aborts the whole job.
static MPI_ACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The exit status of a panic (EX_SOFTWARE: an internal error).
pub const PANIC_STATUS: i32 = 70;

/// Replaces the default panic message by one line naming the rank and the
/// place, then ends the process, and the whole MPI job with it: a panic on
/// one rank must never leave the others waiting in a collective until the
/// allocation runs out. Temporary files are removed first. A panic is a bug
/// of TGLML (bad input is an error, not a panic); the message says so.
/// Called once by `main`, before any work.
pub fn install_panic_hook(rank: usize, mpi_active: bool) {
    use std::sync::atomic::Ordering;
    RANK.store(rank, Ordering::Relaxed);
    MPI_ACTIVE.store(mpi_active, Ordering::Relaxed);
    std::panic::set_hook(Box::new(|info| {
        if CATCHING.with(|c| c.get()) {
            return; // `fallible` turns it into an error
        }
        static ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !ONCE.swap(true, Ordering::SeqCst) {
            let msg = panic_text(info.payload());
            let place = info.location().map_or("an unknown place".to_string(), |l| {
                format!("{}:{}", l.file(), l.line())
            });
            // One write: stderr is unbuffered, and a line written in pieces
            // can be interleaved, where mpirun relays it, with the abort
            // notice that follows.
            let line = format!(
                "tglml: rank {}: internal error (a panic, a bug of tglml) at {place}: {msg}; ending every rank (please report this with the command that caused it)\n",
                RANK.load(Ordering::Relaxed)
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
        }
        crate::io::output::remove_tracked();
        if MPI_ACTIVE.load(Ordering::Relaxed)
            && mpi::environment::is_initialized()
            && !mpi::environment::is_finalized()
        {
            use mpi::traits::Communicator;
            mpi::topology::SimpleCommunicator::world().abort(PANIC_STATUS);
        }
        signal_hook::low_level::exit(PANIC_STATUS);
    }));
}

/// A test-only fault: when the environment variable `TGLML_TEST_PANIC`
/// names this rank, panic here (the reliability tests force a panic on one
/// rank of a job with it and check that the whole job ends).
pub fn test_panic_point(rank: usize) {
    if std::env::var("TGLML_TEST_PANIC").is_ok_and(|v| v.trim() == rank.to_string()) {
        panic!("forced by TGLML_TEST_PANIC={rank}");
    }
}

/// Makes the calling thread worker 0 of a rayon pool of `threads` threads
/// (the others are started), so that its parallel calls run on it directly.
/// Called from a thread outside any pool, every parallel call otherwise
/// hands its work to the pool's threads and sleeps until they finish: two
/// context switches per call, which dominate the many small parallel calls
/// of a training step (per-step Rips on a batch, maxmin landmarks). With one
/// thread the calls then run inline. Returns the pool (keep it for as long
/// as the calls should use it), or `None` when the thread already belongs to
/// a pool. Only for a thread that never waits on work it hands to another
/// thread (the training loop): a thread outside the pool that calls into it
/// while this thread is busy elsewhere would wait for it.
pub fn adopt_current_thread(threads: usize) -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .use_current_thread()
        .build()
        .ok()
}
