//! Uploaded files, as 1 MiB chunks in PostgreSQL.
//!
//! Chunks rather than a shared directory: any gateway can take an upload and
//! any worker on any host can stream it, with nothing to mount. Each chunk is
//! written with its own short statement (no transaction spans a slow
//! upload), and an upload becomes visible only once it is marked complete.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};

/// Size of one stored chunk.
pub const CHUNK_BYTES: usize = 1 << 20;

/// What is known of a stored upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadMeta {
    pub id: String,
    pub owner: String,
    pub bytes: u64,
    pub sha256: Option<String>,
    pub complete: bool,
    /// Chunks stored.
    pub chunks: u32,
}

impl Store {
    /// Starts an upload (not yet visible to jobs).
    pub async fn create_upload(
        &self,
        id: &str,
        owner: &str,
        filename: Option<&str>,
        content_type: Option<&str>,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO uploads (id, owner, filename, content_type) VALUES ($1, $2, $3, $4)",
            &[&id, &owner, &filename, &content_type],
        )
        .await?;
        Ok(())
    }

    /// Stores chunk `seq` of an upload.
    pub async fn put_chunk(&self, id: &str, seq: u32, data: &[u8]) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO upload_chunks (upload_id, seq, data) VALUES ($1, $2, $3)",
            &[&id, &(seq as i32), &data],
        )
        .await?;
        Ok(())
    }

    /// Marks an upload complete with its size and digest.
    pub async fn complete_upload(
        &self,
        id: &str,
        bytes: u64,
        sha256: &str,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "UPDATE uploads SET bytes = $2, sha256 = $3, complete = true WHERE id = $1",
            &[&id, &(bytes as i64), &sha256],
        )
        .await?;
        Ok(())
    }

    /// Removes an upload and its chunks.
    pub async fn delete_upload(&self, id: &str) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute("DELETE FROM uploads WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    /// Removes uploads left incomplete (client gone, process died) before `before`.
    pub async fn delete_incomplete_uploads(
        &self,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        Ok(conn
            .execute(
                "DELETE FROM uploads WHERE NOT complete AND created_at < $1",
                &[&before],
            )
            .await?)
    }

    /// An upload's metadata, if it exists.
    pub async fn upload_meta(&self, id: &str) -> Result<Option<UploadMeta>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT id, owner, bytes, sha256, complete, (SELECT count(*) FROM upload_chunks c WHERE c.upload_id = u.id) AS chunks
                 FROM uploads u WHERE id = $1",
                &[&id],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(UploadMeta {
            id: row.try_get("id")?,
            owner: row.try_get("owner")?,
            bytes: row.try_get::<_, i64>("bytes")?.max(0) as u64,
            sha256: row.try_get("sha256")?,
            complete: row.try_get("complete")?,
            chunks: row.try_get::<_, i64>("chunks")?.max(0) as u32,
        }))
    }

    /// Chunk `seq` of an upload (`None` past the end).
    pub async fn get_chunk(&self, id: &str, seq: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT data FROM upload_chunks WHERE upload_id = $1 AND seq = $2",
                &[&id, &(seq as i32)],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }
}
