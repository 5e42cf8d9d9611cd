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

/// Sizes rayon's global pool and libtorch's intra-op pool to `threads`.
/// Called once per process, before any parallel work.
pub fn init_threads(threads: usize) {
    // Fails only if the global pool was already built (a second call in the
    // same process, as in tests): the first size stays, which is harmless.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    tch::set_num_threads(i32::try_from(threads).unwrap_or(i32::MAX));
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

/// Installs handlers for [`STOP_SIGNALS`] that set the returned flag (and do
/// nothing else: the process keeps running until it looks at the flag). A
/// second SIGTERM or SIGINT ends the process at once with the usual status
/// (143 or 130), for a user who does not want to wait.
pub fn stop_flag() -> crate::error::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    use signal_hook::flag;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failed = |e: std::io::Error| {
        crate::error::Error::invalid("signal handlers", format!("could not be installed: {e}"))
    };
    for (sig, status) in [(SIGTERM, 143), (SIGINT, 130)] {
        // Registered first, so it sees the flag as it was before this signal.
        flag::register_conditional_shutdown(sig, status, std::sync::Arc::clone(&stop))
            .map_err(failed)?;
        flag::register(sig, std::sync::Arc::clone(&stop)).map_err(failed)?;
    }
    flag::register(SIGUSR1, std::sync::Arc::clone(&stop)).map_err(failed)?;
    Ok(stop)
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
