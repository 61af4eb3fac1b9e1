//! What an attempt comes to, as a handler returns it.

use serde_json::Value;

/// What a handler returns: the job's result (any JSON), or why it failed.
pub type JobResult = Result<Value, JobError>;

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (after a backoff), while attempts remain.
    #[error("{0}")]
    Retryable(String),
    /// Not worth retrying (bad input): the job fails now.
    #[error("{0}")]
    Fatal(String),
    /// The handler stopped because its cancellation token fired.
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    pub fn retryable(message: impl Into<String>) -> Self {
        JobError::Retryable(message.into())
    }

    pub fn fatal(message: impl Into<String>) -> Self {
        JobError::Fatal(message.into())
    }
}
