//! `tglml::runtime::return_free_memory` gives freed heap memory back to the
//! system. A file of its own: the resident size it measures is the whole
//! process's, which other tests running beside it would move.

/// This process's resident size in bytes (`/proc/self/statm`).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn freed_memory_below_a_live_allocation_goes_back_to_the_system() {
    // 3,000 blocks of 64 KiB (below glibc's mmap threshold, so on the heap),
    // each followed by a small allocation that stays: the heap's top stays
    // pinned, so freeing the blocks alone returns nothing to the system.
    let block = 64 << 10;
    let mut blocks = Vec::new();
    let mut pins = Vec::new();
    for i in 0..3000 {
        let mut b = vec![0u8; block];
        b.iter_mut()
            .step_by(4096)
            .for_each(|v| *v = (i % 251) as u8 + 1);
        blocks.push(b);
        pins.push(Box::new(i as u64));
    }
    let full = resident_bytes();
    drop(blocks);
    let freed = resident_bytes();
    tglml::runtime::return_free_memory();
    let trimmed = resident_bytes();
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    eprintln!(
        "resident: {:.1} MiB with the blocks, {:.1} MiB after freeing them, {:.1} MiB after the trim",
        mib(full),
        mib(freed),
        mib(trimmed)
    );
    // 187.5 MiB were freed; what the free left resident (glibc returns a
    // part on its own) must mostly leave with the trim.
    assert!(
        freed.saturating_sub(trimmed) > 64 << 20 && trimmed < freed / 2,
        "the trim gave back only {:.1} MiB of the {:.1} MiB resident after the free",
        mib(freed.saturating_sub(trimmed)),
        mib(freed)
    );
    assert_eq!(pins.iter().map(|p| **p).sum::<u64>(), 2999 * 3000 / 2);
}
