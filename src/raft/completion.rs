//! openraft's responder for shardlock's writes: a callback, called once.
//!
//! openraft hands a write's result to its responder where the result is
//! known (the state machine's apply on the leader, or RaftCore when the
//! write is refused). A [`Completion`] runs a callback there, so a batch's
//! outcomes reach the callers that wait for them without a task in between.
//!
//! Invariant: the callback runs exactly once: with the result, or with
//! `None` if openraft drops the responder unanswered (a shutdown).

/// Runs `FnOnce(Option<T>)` once: `Some` with the result, `None` if dropped.
pub struct Completion<T> {
    callback: Option<Box<dyn FnOnce(Option<T>) + Send>>,
}

impl<T> Completion<T> {
    pub fn new(callback: impl FnOnce(Option<T>) + Send + 'static) -> Self {
        Self { callback: Some(Box::new(callback)) }
    }
}

impl<C, T> openraft::raft::responder::Responder<C, T> for Completion<T>
where
    C: openraft::RaftTypeConfig,
    T: Send + 'static,
{
    fn on_complete(mut self, result: T) {
        if let Some(callback) = self.callback.take() {
            callback(Some(result));
        }
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        if let Some(callback) = self.callback.take() {
            callback(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::raft::responder::Responder;
    use std::sync::{Arc, Mutex};

    #[test]
    fn the_callback_runs_once_answered_or_dropped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = |seen: &Arc<Mutex<Vec<Option<u32>>>>| {
            let seen = seen.clone();
            move |v| seen.lock().unwrap().push(v)
        };
        let answered = Completion::new(record(&seen));
        Responder::<crate::raft::types::TypeConfig, u32>::on_complete(answered, 7);
        drop(Completion::<u32>::new(record(&seen)));
        assert_eq!(*seen.lock().unwrap(), vec![Some(7), None]);
    }
}
