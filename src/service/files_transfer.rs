//! File content through the gateway: downloads streamed from Graph's pre-authenticated
//! URLs, signed gateway download links, and uploads (one PUT up to 4 MB, else an upload
//! session in chunks, resumed after a transient failure).
//!
//! Memory stays bounded whatever the file size: a download is a stream handed to the
//! transport; an upload holds one chunk at a time.

use std::pin::Pin;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::files::{ConflictBehavior, DriveItem, DriveRef, ItemRef, check_name, item_reply};
use super::links::DownloadTicket;
use super::{ServiceError, Services, Session};
use crate::graph::models;
use crate::graph::{GraphError, GraphGet, GraphWrite, Idempotency};

/// Files up to this size go in one PUT; larger ones through an upload session.
pub const SIMPLE_UPLOAD_MAX: u64 = 4 * 1024 * 1024;
/// Times one upload may resume after a transient failure before it gives up.
const MAX_RESUMES: u32 = 5;

/// Bytes to upload: a reader and its exact length (an upload session needs the total
/// up front).
pub struct UploadSource {
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
    pub size: u64,
    /// The client's content type; absent, Graph infers it from the name.
    pub content_type: Option<String>,
}

/// Where an upload goes and what happens if the name is taken.
#[derive(Clone, Debug)]
pub struct UploadTarget {
    pub parent: ItemRef,
    pub name: String,
    pub conflict: ConflictBehavior,
    /// Replace only if the existing file still has this eTag.
    pub if_match: Option<String>,
}

/// A download under way: Graph's answer with the body unread, plus what the transport
/// needs for its headers.
pub struct Download {
    pub response: reqwest::Response,
    pub name: Option<String>,
    pub mime_type: Option<String>,
    pub e_tag: Option<String>,
}

/// Settings of file transfers.
#[derive(Clone, Debug)]
pub struct FileSettings {
    pub chunk_bytes: usize,
    pub transfer_timeout: Duration,
}

impl Session {
    /// Streams a file's content (a `Range` such as `bytes=0-99` is passed on; a range
    /// outside the file is `RangeNotSatisfiable`). Graph's download URL is fetched without
    /// the Graph token and only from an allowed host; it never leaves the gateway.
    pub async fn download(
        &self,
        drive: &DriveRef,
        item: &str,
        range: Option<&str>,
    ) -> Result<Download, ServiceError> {
        self.require("files.read")?;
        let base = self.drive_base(drive).await?;
        let meta = self.item_at(&base, &ItemRef::id(item)?, false).await?;
        if meta.file.is_none() {
            return Err(ServiceError::BadInput(format!(
                "item '{item}' is a folder and has no content"
            )));
        }
        let what = format!("the content of item '{item}'");
        let content = GraphGet::new(base.then("items").id(item)?.then("content"));
        let location = self
            .graph()
            .get_location(self.access(), &content, self.deadline())
            .await
            .map_err(|e| self.upstream(e, &what))?;
        let response = self
            .graph()
            .download(
                &location,
                range.filter(|r| is_single_range(r)),
                self.deadline(),
            )
            .await
            .map_err(|e| match e {
                GraphError::Api { status: 416, .. } => ServiceError::RangeNotSatisfiable {
                    size: meta.size.and_then(|s| u64::try_from(s).ok()),
                },
                other => self.upstream(other, &what),
            })?;
        Ok(Download {
            response,
            name: meta.name,
            mime_type: meta.file.and_then(|f| f.mime_type),
            e_tag: meta.e_tag,
        })
    }

    /// A signed gateway link to an item's content, valid for `files.link_ttl`; `None`
    /// for folders. Needs the item as fetched with its download URL.
    pub fn download_link(&self, item: &DriveItem) -> Result<Option<String>, ServiceError> {
        let Some(url) = &item.graph_download_url else {
            return Ok(None);
        };
        let token = self.services.links.seal(
            url.clone(),
            item.name.clone().unwrap_or_else(|| item.id.clone()),
            item.file.as_ref().and_then(|f| f.mime_type.clone()),
        )?;
        let link = self
            .services
            .public_url
            .join(&format!("api/v1/downloads/{token}"))
            .map_err(|_| ServiceError::Internal)?;
        Ok(Some(link.to_string()))
    }

    /// Uploads a file into `target.parent`. Up to 4 MB in one request; above, through an
    /// upload session in chunks of `files.chunk_bytes`, resuming after a transient failure
    /// from where Graph says it stands. A failed upload is cancelled, so a partial file is
    /// never left behind nor reported as uploaded.
    pub async fn upload(
        &self,
        drive: &DriveRef,
        target: &UploadTarget,
        source: &mut UploadSource,
    ) -> Result<DriveItem, ServiceError> {
        self.require("files.write")?;
        check_name(&target.name).map_err(ServiceError::BadInput)?;
        let base = self.drive_base(drive).await?;
        let file_url = target.parent.child_url(&base, &target.name)?;
        let what = format!("file '{}'", target.name);
        let size = source.size;
        if size <= SIMPLE_UPLOAD_MAX {
            let bytes = read_exactly(&mut source.reader, size as usize).await?;
            let url = file_url.then("content").param(
                "@microsoft.graph.conflictBehavior",
                target.conflict.graph_name().to_owned(),
            );
            let request = GraphWrite::put_bytes(
                url,
                bytes.into(),
                source
                    .content_type
                    .as_deref()
                    .unwrap_or("application/octet-stream"),
            )
            .if_match(target.if_match.as_deref());
            let reply = self.write_drive(request, &what).await?;
            return item_reply(&reply.body);
        }

        let body = json!({
            "item": {
                "@microsoft.graph.conflictBehavior": target.conflict.graph_name(),
                "name": target.name,
                "fileSize": size,
            }
        });
        let request = GraphWrite {
            // A second session is harmless (the first expires unused).
            idempotency: Idempotency::Idempotent,
            ..GraphWrite::post(file_url.then("createUploadSession"), body)
        }
        .if_match(target.if_match.as_deref());
        let reply = self.write_drive(request, &what).await?;
        let session: models::UploadSession =
            serde_json::from_slice(&reply.body).map_err(|_| ServiceError::UpstreamBadResponse)?;
        let upload_url = session
            .upload_url
            .ok_or(ServiceError::UpstreamBadResponse)?;
        let result = self
            .send_chunks(&upload_url, &mut source.reader, size, &what)
            .await;
        self.graph().invalidate_files().await;
        if result.is_err() {
            // Best effort: a session left behind expires on its own and holds no file.
            let deadline = Instant::now() + Duration::from_secs(5);
            if let Err(e) = self
                .graph()
                .transfer(reqwest::Method::DELETE, &upload_url, deadline)
                .await
            {
                tracing::info!(error = %e, "could not cancel a failed upload session");
            }
        }
        result
    }

    async fn send_chunks(
        &self,
        upload_url: &str,
        reader: &mut Pin<Box<dyn AsyncRead + Send>>,
        size: u64,
        what: &str,
    ) -> Result<DriveItem, ServiceError> {
        let chunk = self.services.files.chunk_bytes as u64;
        let mut offset = 0u64;
        let mut resumes = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let data = bytes::Bytes::from(read_exactly(reader, len as usize).await?);
            let end = offset + len - 1;
            let last = end + 1 == size;
            loop {
                let error = match self
                    .graph()
                    .put_chunk(
                        upload_url,
                        (offset, end, size),
                        data.clone(),
                        self.deadline(),
                    )
                    .await
                {
                    Ok(reply) if last && matches!(reply.status, 200 | 201) => {
                        return item_reply(&reply.body);
                    }
                    Ok(reply) if !last && matches!(reply.status, 200 | 202) => break,
                    Ok(reply) => {
                        tracing::warn!(status = reply.status, last, "unexpected upload answer");
                        return Err(ServiceError::UpstreamBadResponse);
                    }
                    Err(e) => e,
                };
                if !resumable(&error) {
                    return Err(self.upstream(error, what));
                }
                if resumes >= MAX_RESUMES {
                    // The session is cancelled next, so nothing was stored: whatever the
                    // last failure looked like, the outcome is known.
                    tracing::warn!(error = %error, offset, "upload gave up after {MAX_RESUMES} resumes");
                    return Err(match self.upstream(error, what) {
                        ServiceError::UpstreamOutcomeUnknown
                        | ServiceError::UpstreamTimeout
                        | ServiceError::UpstreamBadResponse => ServiceError::Upstream,
                        other => other,
                    });
                }
                resumes += 1;
                tracing::info!(error = %error, offset, resumes, "upload chunk failed; asking Graph where the upload stands");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(resumes))).await;
                match self.next_expected(upload_url, what).await? {
                    Some(next) if next == offset => continue,
                    Some(next) if next == end + 1 && !last => break,
                    None if last => {
                        // The session is gone after the last chunk: Graph may have
                        // committed the file or not; the caller must check.
                        return Err(ServiceError::UpstreamOutcomeUnknown);
                    }
                    other => {
                        tracing::warn!(
                            ?other,
                            offset,
                            end,
                            "upload session is somewhere unexpected"
                        );
                        return Err(ServiceError::Upstream);
                    }
                }
            }
            offset = end + 1;
        }
        Err(ServiceError::BadInput(
            "an upload needs at least one byte".into(),
        ))
    }

    /// The first byte Graph still expects, from the session's status (`None`: the session
    /// is gone).
    async fn next_expected(
        &self,
        upload_url: &str,
        what: &str,
    ) -> Result<Option<u64>, ServiceError> {
        let reply = self
            .graph()
            .transfer(reqwest::Method::GET, upload_url, self.deadline())
            .await
            .map_err(|e| self.upstream(e, what))?;
        if reply.status == 404 {
            return Ok(None);
        }
        let session: models::UploadSession =
            serde_json::from_slice(&reply.body).map_err(|_| ServiceError::UpstreamBadResponse)?;
        let first = session
            .next_expected_ranges
            .first()
            .and_then(|r| r.split('-').next())
            .and_then(|start| start.parse::<u64>().ok());
        Ok(first)
    }
}

impl UploadSource {
    /// Reads and drops what is left of the body, at most `max` bytes within `time`, so a
    /// client still sending gets to read the error answer instead of a reset connection.
    pub async fn drain(&mut self, max: u64, time: Duration) {
        let mut rest = (&mut self.reader).take(max);
        let _ =
            tokio::time::timeout(time, tokio::io::copy(&mut rest, &mut tokio::io::sink())).await;
    }
}

/// Opens a gateway download link (no caller token: the link is the credential) and
/// starts the download from Graph's URL inside it.
pub async fn download_by_link(
    services: &Services,
    token: &str,
    range: Option<&str>,
) -> Result<(DownloadTicket, reqwest::Response), ServiceError> {
    let ticket = services.links.open(token)?;
    let deadline = Instant::now() + services.files.transfer_timeout;
    let response = services
        .graph
        .download(&ticket.url, range.filter(|r| is_single_range(r)), deadline)
        .await
        .map_err(|e| match e {
            GraphError::Api { status: 416, .. } => ServiceError::RangeNotSatisfiable { size: None },
            // Graph's URL outlived its few minutes, or the file is gone.
            GraphError::Api {
                status: 401 | 403 | 404,
                ..
            } => ServiceError::NotFound("the download link is invalid or has expired".into()),
            other => ServiceError::from_graph(other, "the download"),
        })?;
    Ok((ticket, response))
}

/// Failures after which the upload session may still be continued.
fn resumable(error: &GraphError) -> bool {
    match error {
        // A proxy's error page in front of the upload host is as transient as a reset.
        GraphError::OutcomeUnknown(_)
        | GraphError::Timeout
        | GraphError::Interrupted(_)
        | GraphError::Unreachable(_)
        | GraphError::BadResponse(_) => true,
        GraphError::Api { status, .. } => *status == 416 || *status == 429 || *status >= 500,
        _ => false,
    }
}

/// One `bytes=` range (`a-b`, `a-`, `-n`). Anything else is ignored, as RFC 9110 allows,
/// and the whole file is sent.
pub fn is_single_range(range: &str) -> bool {
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return false;
    };
    let Some((start, end)) = spec.split_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    match (start.is_empty(), end.is_empty()) {
        (false, true) => digits(start),
        (true, false) => digits(end),
        (false, false) => {
            digits(start) && digits(end) && start.parse::<u64>().ok() <= end.parse::<u64>().ok()
        }
        (true, true) => false,
    }
}

/// Reads exactly `len` bytes; a body that ends early (or cannot be read) is the caller's
/// problem, reported as such.
async fn read_exactly(
    reader: &mut Pin<Box<dyn AsyncRead + Send>>,
    len: usize,
) -> Result<Vec<u8>, ServiceError> {
    let mut buf = vec![0u8; len];
    match reader.read_exact(&mut buf).await {
        Ok(_) => Ok(buf),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ServiceError::BadInput(
            "the upload ended before its declared length".into(),
        )),
        Err(e) => Err(body_error(e)),
    }
}

/// A failure reading an upload body: over the body limit (`Limited` says "length limit
/// exceeded"), or the client's stream broke.
pub fn body_error(e: std::io::Error) -> ServiceError {
    if e.to_string().contains("length limit exceeded") {
        ServiceError::PayloadTooLarge("the upload is larger than the gateway accepts".into())
    } else {
        tracing::info!(error = %e, "could not read an upload body");
        ServiceError::BadInput("the upload body could not be read".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_byte_ranges_are_passed_on() {
        for ok in ["bytes=0-99", "bytes=100-", "bytes=-500", "bytes=5-5"] {
            assert!(is_single_range(ok), "{ok}");
        }
        for ignored in [
            "bytes=0-1,5-6",
            "bytes=9-3",
            "items=0-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=0-99\r\nX: y",
        ] {
            assert!(!is_single_range(ignored), "{ignored}");
        }
    }
}
