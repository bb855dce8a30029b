//! Reading a render log from a byte offset, for `read_log`, written once for every adapter
//! whose logs are files.
//!
//! A log is read while the renderer still writes it, so a read may end inside a UTF-8
//! character (cut by the concurrent write or by the size cap). Those bytes are left for
//! the next read, so a tail never shows a broken character. Once the job is terminal and a
//! read reaches the end, nothing more will come: dangling bytes (a renderer killed
//! mid-write, binary output) are returned lossily and the chunk is `complete`, so a
//! follower stops. The split between [`read_file`] (I/O) and [`chunk`] (pure) lets an
//! adapter that reads the file elsewhere (over ssh) share the second half.

use std::path::Path;

use crate::error::{FarmError, Result};
use crate::job::LogChunk;

/// Most bytes one `read_log` call returns; the caller continues from `next_offset`. Large
/// enough that a follower polling once a second keeps up with any renderer, small enough
/// that one reply (base64-encoded over ssh, for Slurm) stays cheap.
pub const LOG_CHUNK_BYTES: u64 = 4 * 1024 * 1024;

/// What one read of a log file returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// The file's size when it was read.
    pub size: u64,
    /// The bytes from the requested offset, at most the requested maximum.
    pub bytes: Vec<u8>,
}

/// Reads at most `max` bytes of the file at `path` from `offset`; `None` when the file does
/// not exist (yet): a job that has not started has no log.
pub async fn read_file(path: &str, offset: u64, max: u64) -> Result<Option<LogRead>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = match tokio::fs::File::open(Path::new(path)).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FarmError::io(format!("cannot open render log {path}"), e)),
    };
    let failed = |e| FarmError::io(format!("cannot read render log {path}"), e);
    let size = file.metadata().await.map_err(failed)?.len();
    let want = size.saturating_sub(offset).min(max);
    let mut bytes = Vec::with_capacity(want as usize);
    if want > 0 {
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(failed)?;
        file.take(want)
            .read_to_end(&mut bytes)
            .await
            .map_err(failed)?;
    }
    Ok(Some(LogRead { size, bytes }))
}

/// The chunk a read from `offset` gives a follower; `read` is `None` when there is no log
/// (no file, or no log at all). `terminal` says whether the job has ended.
pub fn chunk(offset: u64, read: Option<LogRead>, terminal: bool) -> LogChunk {
    let Some(LogRead { size, bytes }) = read else {
        return LogChunk {
            data: String::new(),
            next_offset: offset,
            complete: terminal,
        };
    };
    let reached_end = offset + bytes.len() as u64 >= size;
    let keep = if terminal && reached_end {
        bytes.len()
    } else {
        utf8_complete_len(&bytes)
    };
    let next_offset = offset + keep as u64;
    LogChunk {
        data: String::from_utf8_lossy(&bytes[..keep]).into_owned(),
        next_offset,
        complete: terminal && next_offset >= size,
    }
}

/// `read_log` for a log file readable on this host: at most [`LOG_CHUNK_BYTES`] from
/// `offset`, or an empty chunk when there is no log (yet).
pub async fn read_log_file(path: Option<&str>, offset: u64, terminal: bool) -> Result<LogChunk> {
    let read = match path {
        Some(path) => read_file(path, offset, LOG_CHUNK_BYTES).await?,
        None => None,
    };
    Ok(chunk(offset, read, terminal))
}

/// The length of `bytes` without a UTF-8 sequence cut short at its end: a sequence that
/// the bytes that follow could still complete. Log readers keep those bytes for the next
/// read, so a tail never shows a broken character; invalid bytes earlier on are theirs to
/// show lossily.
pub fn utf8_complete_len(bytes: &[u8]) -> usize {
    // A sequence is at most four bytes, so its lead byte is among the last three.
    for back in 1..=bytes.len().min(3) {
        let start = bytes.len() - back;
        if bytes[start] & 0xC0 == 0x80 {
            continue; // a continuation byte: the lead is further back
        }
        let cut_short = std::str::from_utf8(&bytes[start..])
            .err()
            .is_some_and(|e| e.valid_up_to() == 0 && e.error_len().is_none());
        return if cut_short { start } else { bytes.len() };
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(path: &str, offset: u64, terminal: bool) -> LogChunk {
        read_log_file(Some(path), offset, terminal).await.unwrap()
    }

    #[test]
    fn a_character_cut_at_the_end_is_left_for_the_next_read() {
        let text = "frame é漢🎬".as_bytes();
        for cut in 0..=text.len() {
            let keep = utf8_complete_len(&text[..cut]);
            assert!(std::str::from_utf8(&text[..keep]).is_ok(), "cut {cut}");
            assert!(cut - keep < 4, "cut {cut} kept {keep}");
        }
        assert_eq!(utf8_complete_len(text), text.len());
        // Invalid bytes before the end are not held back: they are shown lossily.
        assert_eq!(utf8_complete_len(b"ab\xffcd"), 5);
        assert_eq!(utf8_complete_len(b"ab\xff"), 3);
    }

    #[test]
    fn only_a_sequence_cut_at_the_end_is_held_back() {
        for (bytes, keep) in [
            (&b"abc"[..], 3),
            (b"", 0),
            (b"ab\xc3", 2),
            (b"ab\xe2\x82", 2),
            (b"ab\xf0\x9f\x8e", 2),
            (b"ab\xf0\x9f\x8e\xac", 6),
            (b"\xff\xe2\x82", 1),
            // Not the start of any character: shown lossily, never held back.
            (b"ab\xff", 3),
            (b"ab\xe0\x80", 4),
            (b"ab\x82", 3),
        ] {
            assert_eq!(utf8_complete_len(bytes), keep, "{bytes:x?}");
        }
    }

    #[tokio::test]
    async fn a_finished_log_ending_inside_a_character_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("render.1.log");
        // A renderer killed in the middle of writing "€" (e2 82 ac).
        std::fs::write(&path, b"frame 1 \xff ok \xe2\x82").unwrap();
        let p = path.display().to_string();
        let running = read(&p, 0, false).await;
        assert_eq!(
            (running.data.as_str(), running.next_offset, running.complete),
            ("frame 1 \u{fffd} ok ", 13, false)
        );
        let done = read(&p, running.next_offset, true).await;
        assert_eq!(
            (done.data.as_str(), done.next_offset, done.complete),
            ("\u{fffd}", 15, true)
        );
        let whole = read(&p, 0, true).await;
        assert_eq!(
            (whole.data.as_str(), whole.next_offset, whole.complete),
            ("frame 1 \u{fffd} ok \u{fffd}", 15, true)
        );
    }

    #[tokio::test]
    async fn one_read_returns_at_most_a_chunk_and_following_it_gets_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("render.2.log");
        // "é" (2 bytes) straddles the chunk boundary; the log is two and a half chunks.
        let chunk = LOG_CHUNK_BYTES as usize;
        let mut text = "a".repeat(chunk - 1);
        text.push('é');
        while text.len() < chunk * 5 / 2 {
            text.push_str("frame ✓ done\n");
        }
        std::fs::write(&path, &text).unwrap();
        let p = path.display().to_string();
        let first = read(&p, 0, true).await;
        assert_eq!((first.data.len(), first.complete), (chunk - 1, false));
        let (mut got, mut offset, mut reads) = (first.data, first.next_offset, 1);
        loop {
            let next = read(&p, offset, true).await;
            assert!(
                next.data.len() <= chunk,
                "{} bytes in one read",
                next.data.len()
            );
            got.push_str(&next.data);
            offset = next.next_offset;
            reads += 1;
            if next.complete {
                break;
            }
            assert!(reads < 10, "the log never completed");
        }
        assert_eq!(reads, 3);
        assert_eq!(got, text);
        assert_eq!(offset, text.len() as u64);
    }

    #[tokio::test]
    async fn log_reads_never_split_a_character_and_a_missing_log_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("render.1.log");
        let text = "frame 1 é\n".as_bytes();
        std::fs::write(&path, &text[..text.len() - 2]).unwrap();
        let p = path.display().to_string();
        let first = read(&p, 0, false).await;
        assert_eq!(first.data, "frame 1 ");
        assert!(!first.complete);
        std::fs::write(&path, text).unwrap();
        let rest = read(&p, first.next_offset, true).await;
        assert_eq!(rest.data, "é\n");
        assert!(rest.complete);
        let missing = read("/nonexistent/render.log", 5, true).await;
        assert_eq!(
            (missing.data.as_str(), missing.next_offset, missing.complete),
            ("", 5, true)
        );
        let none = read_log_file(None, 7, false).await.unwrap();
        assert_eq!((none.next_offset, none.complete), (7, false));
    }
}
