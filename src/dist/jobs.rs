//! Independent tasks (objects of a collection) spread over ranks, with
//! progress aggregated on rank 0 and a collective stop on failure.
//!
//! Each rank computes its own tasks on its rayon threads. MPI is initialised
//! with `Threading::Funneled`, so only the main thread talks MPI: it waits
//! for finished tasks from the worker threads and, between them, exchanges
//! small point-to-point messages with rank 0 — progress counts (at most ten
//! a second), a failure notice, "finished". Rank 0 shows one progress bar
//! (objects done over all ranks, with ETA), and on a failure under
//! [`OnError::Abort`] tells every rank to stop starting new tasks. When all
//! ranks have finished, rank 0 releases them; the caller then gathers the
//! results collectively.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mpi::traits::*;
use rayon::prelude::*;

use super::Comm;
use crate::error::Result;
use crate::progress::Progress;

/// What a failed task does to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Every rank stops starting new tasks; the command fails.
    Abort,
    /// The failure is recorded with the task and the others go on.
    Skip,
}

const TAG_PROGRESS: i32 = 7101;
const TAG_FAILED: i32 = 7102;
const TAG_FINISHED: i32 = 7103;
const TAG_ABORT: i32 = 7104;
const TAG_RELEASE: i32 = 7105;

/// Runs `f` on this rank's tasks `mine` (of `total` over all ranks) and
/// returns their outcomes in completion order, errors as text. With
/// [`OnError::Abort`], tasks not yet started when some rank failed are not
/// run (they are absent from the result). Collective: every rank calls it,
/// each with its own tasks.
pub fn run_tasks<T, F>(
    comm: &Comm,
    mine: &[usize],
    total: usize,
    label: &str,
    on_error: OnError,
    f: F,
) -> Vec<(usize, std::result::Result<T, String>)>
where
    T: Send,
    F: Fn(usize) -> Result<T> + Sync,
{
    let cancel = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, std::result::Result<T, String>)>();
    let bar = Progress::new(comm.is_root(), label, total as u64, "objects");
    let mut results = Vec::with_capacity(mine.len());
    std::thread::scope(|s| {
        let (cancel, f) = (&cancel, &f);
        s.spawn(move || {
            mine.par_iter().for_each_with(tx, |tx, &t| {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                let r = f(t).map_err(|e| crate::error::report(&e));
                let _ = tx.send((t, r));
            });
        });
        let world = comm.raw();
        let size = comm.size();
        let root = comm.is_root();
        let mut remote_done = vec![0u64; size];
        let mut remote_finished = vec![false; size];
        let mut local_finished = false;
        let mut abort_sent = false;
        let mut last_sent = Instant::now();
        let mut sent_count = 0u64;
        let abort = |world: Option<&mpi::topology::SimpleCommunicator>, sent: &mut bool| {
            if let (Some(w), false) = (world, *sent) {
                for r in 1..size {
                    w.process_at_rank(r as i32).send_with_tag(&1u64, TAG_ABORT);
                }
            }
            *sent = true;
        };
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((t, r)) => {
                    let failed = r.is_err();
                    results.push((t, r));
                    if failed && on_error == OnError::Abort {
                        cancel.store(true, Ordering::Relaxed);
                        if root {
                            abort(world, &mut abort_sent);
                        } else if let Some(w) = world {
                            w.process_at_rank(0).send_with_tag(&(t as u64), TAG_FAILED);
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if !local_finished {
                        local_finished = true;
                        if let (Some(w), false) = (world, root) {
                            w.process_at_rank(0)
                                .send_with_tag(&(results.len() as u64), TAG_FINISHED);
                        }
                    } else {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            let done = results.len() as u64;
            let Some(w) = world else {
                bar.set(done);
                if local_finished {
                    break;
                }
                continue;
            };
            if root {
                while let Some(st) = w.any_process().immediate_probe_with_tag(TAG_PROGRESS) {
                    let src = st.source_rank();
                    let (v, _) = w.process_at_rank(src).receive_with_tag::<u64>(TAG_PROGRESS);
                    // A progress count can be received after the rank's
                    // final count (the probes for the two tags are separate):
                    // counts only grow.
                    remote_done[src as usize] = remote_done[src as usize].max(v);
                }
                while let Some(st) = w.any_process().immediate_probe_with_tag(TAG_FAILED) {
                    let src = st.source_rank();
                    let _ = w.process_at_rank(src).receive_with_tag::<u64>(TAG_FAILED);
                    if on_error == OnError::Abort {
                        cancel.store(true, Ordering::Relaxed);
                        abort(world, &mut abort_sent);
                    }
                }
                while let Some(st) = w.any_process().immediate_probe_with_tag(TAG_FINISHED) {
                    let src = st.source_rank();
                    let (v, _) = w.process_at_rank(src).receive_with_tag::<u64>(TAG_FINISHED);
                    remote_done[src as usize] = remote_done[src as usize].max(v);
                    remote_finished[src as usize] = true;
                }
                bar.set(done + remote_done.iter().sum::<u64>());
                if local_finished && remote_finished.iter().skip(1).all(|&f| f) {
                    for r in 1..size {
                        w.process_at_rank(r as i32)
                            .send_with_tag(&0u64, TAG_RELEASE);
                    }
                    break;
                }
            } else {
                if !local_finished
                    && done != sent_count
                    && last_sent.elapsed() >= Duration::from_millis(100)
                {
                    w.process_at_rank(0).send_with_tag(&done, TAG_PROGRESS);
                    sent_count = done;
                    last_sent = Instant::now();
                }
                while w
                    .process_at_rank(0)
                    .immediate_probe_with_tag(TAG_ABORT)
                    .is_some()
                {
                    let _ = w.process_at_rank(0).receive_with_tag::<u64>(TAG_ABORT);
                    cancel.store(true, Ordering::Relaxed);
                }
                if local_finished
                    && w.process_at_rank(0)
                        .immediate_probe_with_tag(TAG_RELEASE)
                        .is_some()
                {
                    let _ = w.process_at_rank(0).receive_with_tag::<u64>(TAG_RELEASE);
                    // An abort sent before the release has arrived already
                    // (messages between two ranks keep their order).
                    while w
                        .process_at_rank(0)
                        .immediate_probe_with_tag(TAG_ABORT)
                        .is_some()
                    {
                        let _ = w.process_at_rank(0).receive_with_tag::<u64>(TAG_ABORT);
                    }
                    break;
                }
            }
        }
    });
    bar.finish();
    results
}

/// Assigns tasks with estimated costs to `ranks` ranks, heaviest first,
/// each to the rank with the least total so far (ties: the lowest rank).
/// Returns every rank's task list, each in increasing task order.
pub fn balance(costs: &[f64], ranks: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    let mut load = vec![0.0f64; ranks];
    let mut out = vec![Vec::new(); ranks];
    for t in order {
        let r = (0..ranks)
            .min_by(|&x, &y| load[x].total_cmp(&load[y]).then(x.cmp(&y)))
            .expect("at least one rank");
        load[r] += costs[t];
        out[r].push(t);
    }
    for v in &mut out {
        v.sort_unstable();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn balance_spreads_cost_and_keeps_every_task() {
        let costs = [10.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 9.0];
        let parts = balance(&costs, 2);
        let mut all: Vec<usize> = parts.concat();
        all.sort_unstable();
        assert_eq!(all, (0..costs.len()).collect::<Vec<_>>());
        let load: Vec<f64> = parts
            .iter()
            .map(|p| p.iter().map(|&t| costs[t]).sum())
            .collect();
        assert_eq!(load, vec![15.0, 14.0]);
        // By count alone the first half would carry 15 of 29 plus more
        // heavy tasks; one rank gets everything.
        assert_eq!(balance(&costs, 1)[0].len(), costs.len());
    }

    #[test]
    fn solo_runs_every_task_and_reports_failures() {
        let c = Comm::solo();
        let mine: Vec<usize> = (0..20).collect();
        let mut r = run_tasks(&c, &mine, 20, "test", OnError::Skip, |t| {
            if t == 7 {
                Err(Error::invalid("task 7", "bad"))
            } else {
                Ok(t * 2)
            }
        });
        r.sort_by_key(|x| x.0);
        assert_eq!(r.len(), 20);
        assert_eq!(r[3].1, Ok(6));
        assert!(r[7].1.as_ref().unwrap_err().contains("task 7"));
        let r = run_tasks(&c, &mine, 20, "test", OnError::Abort, |t| {
            std::thread::sleep(Duration::from_millis(20));
            if t == 0 {
                Err(Error::invalid("task 0", "bad"))
            } else {
                Ok(t)
            }
        });
        assert!(r.len() < 20, "abort stops new tasks");
    }
}
