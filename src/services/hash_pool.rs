//! Threads reserved for password hashing, one per core, at a lower CPU
//! priority than the async workers: a login storm then takes only the CPU
//! that requests like `me` leave over, and each thread keeps reusing its own
//! 19 MiB instead of spreading allocations over the blocking pool.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};

use std::time::Instant;

use tokio::sync::{Semaphore, oneshot};

use crate::error::AppError;
use crate::measure;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of hashing threads with a bounded number of jobs in it.
pub struct HashPool {
    jobs: Mutex<Sender<Job>>,
    /// Running plus queued jobs; past it, refuse at once.
    admitted: Arc<Semaphore>,
    capacity: usize,
}

/// `nice` of the hashing threads: the async workers win any contest for a core.
const HASHING_NICENESS: i32 = 10;

impl HashPool {
    /// Starts `threads` hashing threads that admit `threads + queue` jobs.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<Self> {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while taking a job.
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the pool was dropped
                        }
                    }
                })?;
        }
        Ok(Self {
            jobs: Mutex::new(sender),
            admitted: Arc::new(Semaphore::new(threads + queue)),
            capacity: threads + queue,
        })
    }

    /// Whether a job would be refused now: a cheap early exit before doing
    /// other work for a request that cannot be served.
    pub fn is_full(&self) -> bool {
        self.admitted.available_permits() == 0
    }

    /// Runs `work` on a hashing thread, or refuses with `Overloaded` if the
    /// pool is full. The admission travels with the job, so a request that
    /// gives up cannot let more jobs in than the bound.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let admission = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| AppError::Overloaded)?;
        let (reply, answer) = oneshot::channel();
        let queued = Instant::now();
        let (admitted, capacity) = (self.admitted.clone(), self.capacity);
        measure::hash_queue(capacity - admitted.available_permits());
        let job: Job = Box::new(move || {
            measure::hash_wait(queued.elapsed());
            // Nobody waits for a request that timed out or hung up: a flood
            // of clients that give up must not cost a hash each.
            let result = (!reply.is_closed()).then(work);
            drop(admission);
            measure::hash_queue(capacity - admitted.available_permits());
            if let Some(result) = result {
                let _ = reply.send(result);
            }
        });
        self.jobs
            .lock()
            .map_err(|_| AppError::internal(anyhow::anyhow!("hash pool poisoned")))?
            .send(job)
            .map_err(|_| AppError::internal(anyhow::anyhow!("hash pool stopped")))?;
        answer
            .await
            .map_err(|_| AppError::internal(anyhow::anyhow!("hashing thread died")))?
    }
}

/// Lowers the calling thread's priority. On Linux `setpriority` with
/// `PRIO_PROCESS` and id 0 applies to the calling thread only.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory-safety preconditions.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, HASHING_NICENESS);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_job_whose_caller_gave_up_is_skipped_and_frees_its_place() {
        let pool = Arc::new(HashPool::new(1, 1).unwrap());
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    let _ = hold.recv();
                    Ok(())
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let ran = Arc::new(AtomicBool::new(false));
        let abandoned = {
            let ran = ran.clone();
            pool.run(move || {
                ran.store(true, Ordering::SeqCst);
                Ok(())
            })
        };
        // The caller gives up while its job waits behind the busy one.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), abandoned)
                .await
                .is_err()
        );
        assert!(pool.is_full());
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        pool.run(|| Ok(())).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst), "an abandoned job ran");
        assert!(!pool.is_full());
    }
}
