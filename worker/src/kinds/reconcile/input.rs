//! Reading an upload as CSV: a blocking `Read` over the upload's chunks
//! (fetched by an async task, at most [`PREFETCH`] chunks ahead), dialect
//! detection and header lookup.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay_shared::jobs::store::UploadMeta;
use relay_shared::jobs::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Chunks fetched ahead of the CSV reader (each up to 1 MiB).
pub(crate) const PREFETCH: usize = 2;
/// Buffer of the CSV reader's input.
const READ_BUFFER: usize = 64 * 1024;

/// Why the input stopped, beyond the CSV itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceState {
    /// Storage failed (retryable).
    pub(crate) failed: Arc<Mutex<Option<String>>>,
    /// Bytes handed to the CSV reader so far (for progress).
    pub(crate) consumed: Arc<AtomicU64>,
}

/// A blocking reader of one upload's bytes.
pub(crate) struct ChunkReader {
    rx: mpsc::Receiver<Result<Vec<u8>, String>>,
    buf: Vec<u8>,
    pos: usize,
    state: SourceState,
    stop: CancellationToken,
}

impl ChunkReader {
    /// Starts fetching the upload's chunks on the current runtime.
    pub(crate) fn open(
        store: Store,
        meta: &UploadMeta,
        state: SourceState,
        stop: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(PREFETCH);
        let (id, chunks) = (meta.id.clone(), meta.chunks);
        let fetch_stop = stop.clone();
        tokio::spawn(async move {
            for seq in 0..chunks {
                let chunk = fetch(&store, &id, seq).await;
                let failed = chunk.is_err();
                tokio::select! {
                    _ = fetch_stop.cancelled() => return,
                    sent = tx.send(chunk) => if sent.is_err() { return },
                }
                if failed {
                    return;
                }
            }
        });
        Self {
            rx,
            buf: Vec::new(),
            pos: 0,
            state,
            stop,
        }
    }
}

async fn fetch(store: &Store, id: &str, seq: u32) -> Result<Vec<u8>, String> {
    let mut delay = Duration::from_millis(100);
    for _ in 0..6 {
        match store.get_chunk(id, seq).await {
            Ok(Some(data)) => return Ok(data),
            Ok(None) => return Err(format!("upload {id} lost chunk {seq}")),
            Err(e) if e.is_unavailable() => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!(
        "upload {id}: postgresql unavailable while reading chunk {seq}"
    ))
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            if self.stop.is_cancelled() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "job stopped"));
            }
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(data)) => {
                    self.buf = data;
                    self.pos = 0;
                }
                Some(Err(e)) => {
                    if let Ok(mut f) = self.state.failed.lock() {
                        *f = Some(e.clone());
                    }
                    return Err(io::Error::other(e));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.state.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An opened CSV file: its reader, delimiter and header.
pub(crate) struct CsvInput<R: Read> {
    pub(crate) reader: csv::Reader<BufReader<R>>,
    pub(crate) delimiter: u8,
    pub(crate) header: Vec<String>,
}

/// Opens CSV from `source`: skips a UTF-8 BOM, detects the delimiter from
/// the header line unless given, reads the header.
pub(crate) fn open_csv<R: Read>(
    source: R,
    delimiter: Option<u8>,
    side: &str,
) -> Result<CsvInput<R>, String> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER, source);
    let head = buffered
        .fill_buf()
        .map_err(|e| format!("{side} file: {e}"))?;
    let bom = head.starts_with(b"\xEF\xBB\xBF");
    let head = if bom { &head[3..] } else { head };
    let delimiter = delimiter.unwrap_or_else(|| detect_delimiter(head));
    if bom {
        buffered.consume(3);
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(buffered);
    let header = reader
        .headers()
        .map_err(|e| format!("{side} file: malformed CSV header: {e}"))?;
    if header.is_empty() || (header.len() == 1 && header[0].trim().is_empty()) {
        return Err(format!("{side} file is empty (no header line)"));
    }
    let header = header.iter().map(|h| h.trim().to_string()).collect();
    Ok(CsvInput {
        reader,
        delimiter,
        header,
    })
}

/// `;` when the header line has more semicolons than commas outside quotes, else `,`.
pub(crate) fn detect_delimiter(head: &[u8]) -> u8 {
    let (mut commas, mut semis, mut quoted) = (0usize, 0usize, false);
    for &b in head {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            b',' if !quoted => commas += 1,
            b';' if !quoted => semis += 1,
            _ => {}
        }
    }
    if semis > commas {
        b';'
    } else {
        b','
    }
}

/// The index of a column: exact (trimmed) name first, then ignoring case.
pub(crate) fn column(header: &[String], name: &str, side: &str) -> Result<usize, String> {
    let name = name.trim();
    header
        .iter()
        .position(|h| h == name)
        .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(name)))
        .ok_or_else(|| {
            format!(
                "{side} file has no column {name:?} (columns: {})",
                header.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_delimiters_outside_quotes() {
        assert_eq!(detect_delimiter(b"ID,AMOUNT\n1,2"), b',');
        assert_eq!(detect_delimiter(b"ID;MONTANT;\"a,b,c\"\n1;2;3"), b';');
        assert_eq!(detect_delimiter(b"\"x;y;z\",b\n"), b',');
        assert_eq!(detect_delimiter(b"ID\n1"), b',');
    }

    #[test]
    fn opens_with_bom_and_finds_columns() {
        let data = "\u{feff}ID;Montant\n1;2\n".as_bytes();
        let input = open_csv(data, None, "left").unwrap();
        assert_eq!(input.delimiter, b';');
        assert_eq!(input.header, vec!["ID", "Montant"]);
        assert_eq!(column(&input.header, "MONTANT", "left").unwrap(), 1);
        assert!(column(&input.header, "REF", "left")
            .unwrap_err()
            .contains("no column \"REF\""));
        assert!(open_csv(&b""[..], None, "left").is_err());
    }
}
