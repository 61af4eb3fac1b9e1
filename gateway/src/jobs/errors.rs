//! Job errors as contract errors: PostgreSQL or Redis away is 503
//! `UNAVAILABLE` (retryable); anything else unexpected is logged and 500.

use relay_shared::jobs::queue::QueueError;
use relay_shared::jobs::{JobsError, StoreError};
use relay_shared::protocol::ErrorCode;

use crate::http::error::ApiError;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            return ApiError::unavailable("postgresql is unavailable");
        }
        tracing::error!(error = %e, "job store error");
        ApiError::new(ErrorCode::ServerError, "internal error")
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        if e.is_unavailable() {
            return ApiError::unavailable("redis is unavailable");
        }
        tracing::error!(error = %e, "job queue error");
        ApiError::new(ErrorCode::ServerError, "internal error")
    }
}

impl From<JobsError> for ApiError {
    fn from(e: JobsError) -> Self {
        match e {
            JobsError::Store(e) => e.into(),
            JobsError::Queue(e) => e.into(),
            JobsError::Busy => ApiError::unavailable(e.to_string()),
        }
    }
}
