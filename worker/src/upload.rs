//! Reading an upload a job's payload names, chunk by chunk (1 MiB each,
//! straight from PostgreSQL, never the whole file in memory), for any kind.

use relay_shared::jobs::store::UploadMeta;
use relay_shared::jobs::Store;

use crate::error::JobError;

/// An upload opened by [`crate::JobContext::upload`].
pub struct UploadReader {
    store: Store,
    meta: UploadMeta,
    next: u32,
}

impl std::fmt::Debug for UploadReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadReader")
            .field("id", &self.meta.id)
            .field("bytes", &self.meta.bytes)
            .field("next", &self.next)
            .finish()
    }
}

impl UploadReader {
    /// Opens a complete upload; an unknown or incomplete one is a fatal
    /// error, PostgreSQL away a retryable one.
    pub(crate) async fn open(store: Store, id: &str) -> Result<Self, JobError> {
        match store.upload_meta(id).await {
            Ok(Some(meta)) if meta.complete => Ok(Self {
                store,
                meta,
                next: 0,
            }),
            Ok(_) => Err(JobError::fatal(format!("unknown upload {id:?}"))),
            Err(e) => Err(JobError::retryable(format!("upload {id}: {e}"))),
        }
    }

    pub fn id(&self) -> &str {
        &self.meta.id
    }

    /// The upload's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.meta.bytes
    }

    /// The SHA-256 (hex) of the whole upload.
    pub fn sha256(&self) -> Option<&str> {
        self.meta.sha256.as_deref()
    }

    /// The next chunk of the upload, `None` after the last one.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, JobError> {
        if self.next >= self.meta.chunks {
            return Ok(None);
        }
        let (id, seq) = (&self.meta.id, self.next);
        match self.store.get_chunk(id, seq).await {
            Ok(Some(data)) => {
                self.next += 1;
                Ok(Some(data))
            }
            Ok(None) => Err(JobError::fatal(format!("upload {id} lost chunk {seq}"))),
            Err(e) => Err(JobError::retryable(format!(
                "upload {id}, chunk {seq}: {e}"
            ))),
        }
    }
}
