//! What content is, judged from its first bytes (its magic numbers) with
//! `infer`, not from what its name or its sender claims.

use std::os::unix::fs::FileExt as _;

use crate::body::{Body, BodyError};

/// How much of the content is read to judge its type: enough for the
/// signatures `infer` knows that matter here (OOXML's first zip entries
/// included), one read of data the upload has just hashed.
const HEAD_BYTES: u64 = 16 * 1024;

/// The type of some content.
#[derive(Debug, Clone, PartialEq)]
pub struct Sniffed {
    /// The MIME type to record.
    pub mime: String,
    /// Whether `mime` comes from a signature in the content; otherwise it is
    /// the sender's or the name's claim, or a guess at text or bytes.
    pub from_signature: bool,
}

/// The first bytes of a re-readable body.
pub async fn head(body: &Body) -> Result<Vec<u8>, BodyError> {
    match body {
        Body::Bytes(bytes) => Ok(bytes[..bytes.len().min(HEAD_BYTES as usize)].to_vec()),
        Body::File(range) => {
            let range = range.clone();
            tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; range.len.min(HEAD_BYTES) as usize];
                let mut done = 0;
                while done < buf.len() {
                    match range.file.read_at(&mut buf[done..], range.offset + done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(source) => return Err(BodyError::Io { label: range.label.to_string(), source }),
                    }
                }
                buf.truncate(done);
                Ok(buf)
            })
            .await
            .expect("reading thread panicked")
        }
        Body::Response(_) | Body::Trailed(_) => Err(BodyError::NotSliceable),
    }
}

/// The type of content starting with `head`. `claimed` is what the sender
/// declared or the name suggests; it is used only when the content carries
/// no signature and does not contradict it.
pub fn sniff(head: &[u8], claimed: &str) -> Sniffed {
    if let Some(kind) = infer::get(head) {
        let mime = kind.mime_type();
        // `infer`'s text matchers (HTML, XML, shebang scripts) are guesses
        // from a prefix; a text type the sender named is more precise.
        if mime.starts_with("text/") && claimed.starts_with("text/") {
            return Sniffed { mime: claimed.to_string(), from_signature: false };
        }
        return Sniffed { mime: mime.to_string(), from_signature: true };
    }
    // A binary format with a signature that is absent is not that format.
    let trusted = claimed != "application/octet-stream" && !expects_signature(claimed);
    let mime = match (trusted, looks_like_text(head)) {
        (true, _) => claimed,
        (false, true) => "text/plain",
        (false, false) => "application/octet-stream",
    };
    Sniffed { mime: mime.to_string(), from_signature: false }
}

/// Whether content of type `mime` always starts with a signature `infer`
/// recognises. Text formats are left out: `infer` spots some of them only by
/// an optional prefix such as `<?xml` or `#!`.
pub fn expects_signature(mime: &str) -> bool {
    !mime.starts_with("text/") && infer::is_mime_supported(mime)
}

/// UTF-8 without NUL bytes, allowing a character cut at the end of the head.
fn looks_like_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

    #[test]
    fn signatures_win_over_claims() {
        assert_eq!(sniff(PNG, "application/pdf"), Sniffed { mime: "image/png".into(), from_signature: true });
        assert_eq!(sniff(b"%PDF-1.7\n", "text/plain").mime, "application/pdf");
    }

    #[test]
    fn content_without_a_signature_keeps_a_claim_it_does_not_contradict() {
        assert_eq!(sniff(b"a,b\n1,2\n", "text/csv").mime, "text/csv");
        assert_eq!(sniff(b"{\"a\": 1}", "application/json").mime, "application/json");
        // Claimed to be a PDF, but a PDF would start with %PDF.
        assert_eq!(sniff(b"just text", "application/pdf").mime, "text/plain");
        assert_eq!(sniff(b"\0\x01\x02", "image/png").mime, "application/octet-stream");
        assert_eq!(sniff(b"plain", "application/octet-stream").mime, "text/plain");
        assert_eq!(sniff("caf\u{e9}".as_bytes(), "application/octet-stream").mime, "text/plain");
    }

    #[test]
    fn a_named_text_type_refines_a_text_guess() {
        assert_eq!(sniff(b"#!/usr/bin/env python3\n", "text/x-python").mime, "text/x-python");
        assert_eq!(sniff(b"#!/bin/sh\n", "application/octet-stream").mime, "text/x-shellscript");
    }

    #[test]
    fn a_character_cut_by_the_head_is_still_text() {
        let cut = &"é".as_bytes()[..1];
        assert!(looks_like_text(&[b"abc".as_slice(), cut].concat()));
        assert!(!looks_like_text(b"abc\xff\xfe def"));
    }
}
