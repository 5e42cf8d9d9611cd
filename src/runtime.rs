//! Process set-up shared by every command: threads per rank.

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
