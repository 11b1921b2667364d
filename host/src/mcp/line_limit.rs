//! Answers stdio messages too long to read. rmcp's line transport drops an
//! over-long line without a word, leaving the client waiting for its
//! request's answer until its own timeout. This reader sits in front of it:
//! past the limit it stops passing the line on (rmcp then sees a cut line,
//! which is not JSON, and ignores it) and passes a short request in its
//! place, carrying the original request's id, that the server answers with
//! an error naming the limit.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

/// The method of the stand-in request; `params.limit` is the limit in bytes.
pub const TOO_LONG_METHOD: &str = "wharf/message-too-long";
/// How much of a line's start is kept to find its `"id"` and `"_meta"`.
const PREFIX_BYTES: usize = 16 << 10;

pub struct LineLimit<R> {
    inner: R,
    limit: usize,
    /// Bytes of the current line seen so far, without its newline.
    line_len: usize,
    /// The start of the current line.
    prefix: Vec<u8>,
    /// Past the limit: the rest of the line is dropped.
    dropping: bool,
    /// Bytes ready for the reader above, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
    scratch: Box<[u8]>,
}

impl<R> LineLimit<R> {
    /// Lines longer than `limit` bytes are replaced; the transport above must
    /// accept somewhat longer ones, so that it never drops a line itself.
    pub fn new(inner: R, limit: usize) -> Self {
        Self {
            inner,
            limit,
            line_len: 0,
            prefix: Vec::new(),
            dropping: false,
            out: Vec::new(),
            out_pos: 0,
            scratch: vec![0; 64 << 10].into_boxed_slice(),
        }
    }

    fn keep_prefix(&mut self, bytes: &[u8]) {
        let room = PREFIX_BYTES.saturating_sub(self.prefix.len());
        self.prefix.extend_from_slice(&bytes[..room.min(bytes.len())]);
    }

    /// Moves newly read bytes to `out`, replacing over-long lines.
    fn process(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let newline = data.iter().position(|b| *b == b'\n');
            let content = &data[..newline.unwrap_or(data.len())];
            if !self.dropping {
                let room = self.limit - self.line_len;
                if content.len() <= room {
                    self.out.extend_from_slice(content);
                    self.keep_prefix(content);
                    self.line_len += content.len();
                } else {
                    self.keep_prefix(content);
                    self.dropping = true;
                }
            }
            match newline {
                Some(at) => {
                    self.out.push(b'\n');
                    if self.dropping {
                        self.out.extend_from_slice(stand_in(&self.prefix, self.limit).as_bytes());
                    }
                    self.line_len = 0;
                    self.prefix.clear();
                    self.dropping = false;
                    data = &data[at + 1..];
                }
                None => data = &[],
            }
        }
    }
}

/// The stand-in for an over-long line: a request with the same id, or
/// nothing when no id can be found (a notification gets no answer anyway).
/// The request's `_meta` goes along: clients of the 2026-07-28 protocol send
/// their protocol version there, and a request without it is refused.
fn stand_in(prefix: &[u8], limit: usize) -> String {
    let text = String::from_utf8_lossy(prefix);
    let Some(id) = request_id(&text) else {
        return String::new();
    };
    let meta = match member_object(&text, "_meta") {
        Some(meta) => format!(",\"_meta\":{meta}"),
        // A `_meta` longer than the prefix: keep the members that matter.
        None => {
            let version = member_string(&text, PROTOCOL_VERSION_KEY).map(|v| format!("\"{PROTOCOL_VERSION_KEY}\":{v}"));
            let capabilities = member_object(&text, CAPABILITIES_KEY).map(|c| format!("\"{CAPABILITIES_KEY}\":{c}"));
            let members: Vec<String> = version.into_iter().chain(capabilities).collect();
            match members.is_empty() {
                true => String::new(),
                false => format!(",\"_meta\":{{{}}}", members.join(",")),
            }
        }
    };
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{TOO_LONG_METHOD}\",\"params\":{{\"limit\":{limit}{meta}}}}}\n"
    )
}

const PROTOCOL_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";

/// The JSON text (quotes included) of the first string-valued member `name`.
fn member_string<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\"");
    let at = text.find(&key)?;
    let value = text[at + key.len()..].trim_start().strip_prefix(':')?.trim_start();
    let body = value.strip_prefix('"')?;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(&value[..i + 2]),
            _ => escaped = false,
        }
    }
    None
}

/// The JSON text of the first object-valued member `name`, if it ends
/// within `text`.
fn member_object<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\"");
    let at = text.find(&key)?;
    let value = text[at + key.len()..].trim_start().strip_prefix(':')?.trim_start();
    if !value.starts_with('{') {
        return None;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in value.char_indices() {
        match (in_string, c) {
            (true, '\\') if !escaped => escaped = true,
            (true, '"') if !escaped => in_string = false,
            (true, _) => escaped = false,
            (false, '"') => in_string = true,
            (false, '{') => depth += 1,
            (false, '}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(&value[..=i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The JSON text of the `"id"` member near the start of a JSON-RPC message:
/// a number or a string, as written.
fn request_id(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(at) = rest.find("\"id\"") {
        let after = rest[at + 4..].trim_start();
        if let Some(value) = after.strip_prefix(':').map(str::trim_start) {
            if let Some(string) = value.strip_prefix('"') {
                let mut escaped = false;
                for (i, c) in string.char_indices() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => return Some(format!("\"{}\"", &string[..i])),
                        _ => escaped = false,
                    }
                }
                return None;
            }
            let number: String = value.chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
            if !number.is_empty() && number != "-" {
                return Some(number);
            }
        }
        rest = &rest[at + 4..];
    }
    None
}

impl<R: AsyncRead + Unpin> AsyncRead for LineLimit<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.out_pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_pos);
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut read = ReadBuf::new(&mut this.scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let filled = read.filled().len();
            if filled == 0 {
                return Poll::Ready(Ok(())); // end of input
            }
            let scratch = std::mem::take(&mut this.scratch);
            this.process(&scratch[..filled]);
            this.scratch = scratch;
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn through(input: &[u8], limit: usize) -> String {
        let mut out = String::new();
        LineLimit::new(input, limit).read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn short_lines_pass_unchanged() {
        let input = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"}\n{\"x\":2}\n";
        assert_eq!(through(input.as_bytes(), 64).await, input);
    }

    #[tokio::test]
    async fn a_long_line_is_cut_and_answered_under_its_id() {
        let long = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":\"req-7\",\"method\":\"tools/call\",\"params\":\"{}\"}}\n",
            "a".repeat(500)
        );
        let out = through(format!("{long}{{\"id\":8}}\n").as_bytes(), 100).await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].len() <= 100 && long.starts_with(lines[0]), "what is passed of the line is its start");
        assert!(serde_json::from_str::<serde_json::Value>(lines[0]).is_err(), "the cut line is not JSON");
        let stand_in: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(stand_in["id"], "req-7");
        assert_eq!(stand_in["method"], TOO_LONG_METHOD);
        assert_eq!(lines[2], "{\"id\":8}");
    }

    #[test]
    fn ids_are_found_as_written() {
        assert_eq!(request_id("{\"jsonrpc\":\"2.0\", \"id\" : 42, \"m\""), Some("42".into()));
        assert_eq!(request_id("{\"id\":\"a\\\"b\","), Some("\"a\\\"b\"".into()));
        assert_eq!(request_id("{\"method\":\"notifications/x\",\"params\":"), None);
        let meta = "{\"id\":1,\"params\":{\"_meta\":{\"v\":\"2026\",\"x\":{\"s\":\"}\"}},\"pad\":\"aaa";
        assert_eq!(member_object(meta, "_meta"), Some("{\"v\":\"2026\",\"x\":{\"s\":\"}\"}}"));
        let long =
            "{\"id\":1,\"params\":{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"pad\":\"aaa";
        assert_eq!(member_string(long, PROTOCOL_VERSION_KEY), Some("\"2026-07-28\""));
        assert!(
            stand_in(long.as_bytes(), 9)
                .contains("\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}")
        );
    }
}
