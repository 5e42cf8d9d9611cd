//! Work done one step ahead, on a second thread: the part of a training
//! step that depends only on the data (the data batch's diagrams for the
//! topological loss, its landmarks) is computed for step t + 1 while step t
//! trains, so that it costs the step nothing on a second core.
//!
//! The jobs are pure functions of their inputs, so what they return does
//! not depend on when or where they run: results stay identical for any
//! number of ranks and threads. A panic on the thread ends the job, as a
//! panic anywhere does (the panic hook of [`tglml::runtime`]).

use std::sync::mpsc;
use std::thread::JoinHandle;

type Job<R> = Box<dyn FnOnce() -> R + Send>;

/// One background thread that runs jobs one at a time, in the order they
/// were given, each with a rayon pool of that thread alone (so the jobs'
/// parallel calls run inline and never queue behind the training loop's
/// own pool). Where the process has no CPU to spare for it, there is no
/// thread: each job runs when its result is taken, on the caller's thread
/// (two threads time-sharing one CPU only add switches).
pub struct Ahead<R: Send + 'static> {
    worker: Option<Worker<R>>,
    /// Jobs given and not yet taken back (without a worker, the jobs
    /// themselves).
    pending: std::collections::VecDeque<Option<Job<R>>>,
}

struct Worker<R> {
    jobs: Option<mpsc::Sender<Job<R>>>,
    results: mpsc::Receiver<R>,
    thread: Option<JoinHandle<()>>,
}

impl<R: Send + 'static> Ahead<R> {
    /// Starts the thread (named `name`, as `top -H` and debuggers show it)
    /// when this process may use more CPUs than `busy`, the threads its
    /// caller keeps busy.
    pub fn new(name: &str, busy: usize) -> std::io::Result<Self> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let worker = if cpus > busy {
            Some(Worker::start(name)?)
        } else {
            None
        };
        Ok(Ahead {
            worker,
            pending: Default::default(),
        })
    }

    /// Whether jobs run on a thread of their own.
    pub fn is_threaded(&self) -> bool {
        self.worker.is_some()
    }

    /// Queues `job`; its result is taken back by [`Ahead::take`], in order.
    pub fn give(&mut self, job: impl FnOnce() -> R + Send + 'static) {
        match &self.worker {
            Some(w) => {
                w.jobs
                    .as_ref()
                    .expect("the queue is open until drop")
                    .send(Box::new(job))
                    .expect("the background thread runs until the queue is closed");
                self.pending.push_back(None);
            }
            None => self.pending.push_back(Some(Box::new(job))),
        }
    }

    /// The result of the oldest job not yet taken, waiting for it; `None`
    /// when no job is pending.
    pub fn take(&mut self) -> Option<R> {
        match self.pending.pop_front()? {
            Some(job) => Some(job()),
            None => Some(
                self.worker
                    .as_ref()
                    .expect("a job given to the thread")
                    .results
                    .recv()
                    .expect(
                        "the background thread answers every job (a panic there ends the process)",
                    ),
            ),
        }
    }
}

impl<R: Send + 'static> Worker<R> {
    fn start(name: &str) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job<R>>();
        let (done, results) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let _pool = tglml::runtime::adopt_current_thread(1);
                for job in queue {
                    if done.send(job()).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Worker {
            jobs: Some(jobs),
            results,
            thread: Some(thread),
        })
    }
}

impl<R> Drop for Worker<R> {
    /// Closes the queue and waits for the job under way (results not taken
    /// are dropped).
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With a thread (no CPU counted busy) and without (more busy than
    /// any machine has).
    fn both() -> [Ahead<u64>; 2] {
        [
            Ahead::new("test-ahead", 0).unwrap(),
            Ahead::new("test-ahead", usize::MAX).unwrap(),
        ]
    }

    #[test]
    fn results_come_back_in_order() {
        for (mut a, threaded) in both().into_iter().zip([true, false]) {
            assert_eq!(a.is_threaded(), threaded);
            assert!(a.take().is_none());
            for k in 0..5u64 {
                a.give(move || {
                    std::thread::sleep(std::time::Duration::from_millis(5 - k));
                    k * k
                });
            }
            let got: Vec<u64> = std::iter::from_fn(|| a.take()).collect();
            assert_eq!(got, vec![0, 1, 4, 9, 16]);
            // A job given and not taken is dropped with the worker, which
            // waits for it.
            a.give(|| 1);
        }
    }

    #[test]
    fn jobs_run_beside_the_caller_or_when_taken() {
        let [mut threaded, mut inline] = both();
        let here = std::thread::current().id();
        let on_caller = |a: &mut Ahead<u64>| {
            a.give(move || u64::from(std::thread::current().id() == here));
            a.take() == Some(1)
        };
        assert!(!on_caller(&mut threaded));
        assert!(on_caller(&mut inline));
    }

    #[test]
    fn parallel_calls_run_on_the_worker_itself() {
        let mut a = Ahead::new("test-ahead", 0).unwrap();
        a.give(|| {
            use rayon::prelude::*;
            let me = std::thread::current().id();
            (0..64)
                .into_par_iter()
                .map(|_| std::thread::current().id() == me)
                .all(|x| x)
        });
        assert_eq!(a.take(), Some(true));
    }
}
