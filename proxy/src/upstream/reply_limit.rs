//! The bound on one line (one JSON-RPC message) a stdio upstream writes.
//!
//! rmcp's line reader drops a line over its limit silently, so the request it answered waits
//! for the call timeout and fails with a misleading "timed out". [`ReplyLimit`] sits between
//! the child's stdout and rmcp: bytes pass through unbuffered while the current line is within
//! the limit; the moment it passes the limit, the line is ended there (rmcp drops the cut,
//! unparsable prefix), the rest is discarded up to its newline, and in its place comes a
//! JSON-RPC error for the same id, so the call fails at once naming the limit. The id is read
//! from the line's first bytes (serializers that write `id` first: rmcp, the Python and Go
//! SDKs) or its last ones (`{"result":…,"jsonrpc":"2.0","id":1}`: the TypeScript SDK). A line
//! whose id cannot be read ends the stream: every request still waiting on the connection then
//! fails as a closed connection instead of hanging.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// How much of an oversized line's start and end is kept to find its id.
const HEAD: usize = 4096;
const TAIL: usize = 512;

/// The JSON-RPC code of the error put in place of an oversized reply (internal error).
const OVERSIZED_CODE: i32 = -32603;

pub struct ReplyLimit<R> {
    inner: R,
    limit: usize,
    /// Bytes of the current line seen so far.
    line_len: usize,
    /// The current line's first bytes (for the id of a line that turns out oversized).
    head: Vec<u8>,
    /// Set while an oversized line is discarded up to its newline.
    discard: Option<Discard>,
    /// Bytes to hand out before reading more (a cut's newline, an error line).
    pending: Vec<u8>,
    /// The stream ends once `pending` is drained (an oversized line without a readable id).
    end_after_pending: bool,
    read_buf: Box<[u8]>,
    /// Part of `read_buf` read from `inner` and not yet handed out.
    unread: std::ops::Range<usize>,
}

struct Discard {
    head: Vec<u8>,
    /// The last bytes seen of the line (a rolling window).
    tail: Vec<u8>,
}

impl<R> ReplyLimit<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        Self {
            inner,
            limit,
            line_len: 0,
            head: Vec::new(),
            discard: None,
            pending: Vec::new(),
            end_after_pending: false,
            read_buf: vec![0; 16 * 1024].into_boxed_slice(),
            unread: 0..0,
        }
    }

    /// Moves what can be handed out of `unread` into `out`, cutting and replacing an
    /// oversized line on the way.
    fn process(&mut self, out: &mut ReadBuf<'_>) {
        while !self.unread.is_empty() && out.remaining() > 0 && self.pending.is_empty() {
            let chunk = &self.read_buf[self.unread.clone()];
            let newline = chunk.iter().position(|b| *b == b'\n');
            let line_part = newline.map_or(chunk.len(), |i| i);
            if let Some(discard) = &mut self.discard {
                keep_tail(&mut discard.tail, &chunk[..line_part]);
                self.unread.start += line_part;
                if newline.is_some() {
                    self.unread.start += 1;
                    let discard = self.discard.take().expect("discarding");
                    self.replace_oversized(discard);
                }
                continue;
            }
            let room = self.limit - self.line_len;
            if line_part > room {
                // Past the limit: hand out what fits, end the line there, discard the rest.
                let take = room.min(out.remaining());
                self.pass(out, take);
                if take == room {
                    self.pending.push(b'\n');
                    let head = std::mem::take(&mut self.head);
                    self.discard = Some(Discard {
                        head,
                        tail: Vec::new(),
                    });
                }
                continue;
            }
            let take = newline.map_or(line_part, |i| i + 1).min(out.remaining());
            self.pass(out, take);
            if newline.is_some_and(|i| take == i + 1) {
                self.line_len = 0;
                self.head.clear();
            }
        }
    }

    /// Hands `n` bytes of `unread` (within the current line) to `out`.
    fn pass(&mut self, out: &mut ReadBuf<'_>, n: usize) {
        let bytes = &self.read_buf[self.unread.start..self.unread.start + n];
        if self.head.len() < HEAD {
            let keep = (HEAD - self.head.len()).min(n);
            self.head.extend_from_slice(&bytes[..keep]);
        }
        out.put_slice(bytes);
        self.line_len += n;
        self.unread.start += n;
    }

    /// The oversized line is over: put an error for its id in its place, or end the stream.
    fn replace_oversized(&mut self, discard: Discard) {
        self.line_len = 0;
        self.head.clear();
        let id = reply_id(&discard.head).or_else(|| trailing_id(&discard.tail));
        let Some(id) = id else {
            tracing::error!(
                limit = self.limit,
                "stdio upstream sent a message over the reply limit without a readable id; closing the connection"
            );
            self.end_after_pending = true;
            return;
        };
        tracing::warn!(limit = self.limit, %id, "stdio upstream reply over the limit; failing the call");
        let error = serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {
                "code": OVERSIZED_CODE,
                "message": format!(
                    "the upstream's reply is larger than the {} byte limit (--stdio-max-reply-bytes)",
                    self.limit
                ),
            },
        });
        self.pending.extend_from_slice(error.to_string().as_bytes());
        self.pending.push(b'\n');
    }
}

fn keep_tail(tail: &mut Vec<u8>, bytes: &[u8]) {
    tail.extend_from_slice(bytes);
    if tail.len() > TAIL {
        tail.drain(..tail.len() - TAIL);
    }
}

/// The top-level `id` of a message whose beginning is `head`, when it comes before the first
/// nested value (`{"jsonrpc":"2.0","id":7,"result":…`).
fn reply_id(head: &[u8]) -> Option<serde_json::Value> {
    let text = std::str::from_utf8(head).ok().or_else(|| {
        // a cut in the middle of a UTF-8 sequence: keep what decodes
        let valid = std::str::from_utf8(head).err()?.valid_up_to();
        std::str::from_utf8(&head[..valid]).ok()
    })?;
    let body = text.trim_start().strip_prefix('{')?;
    let mut rest = body;
    // Walk "key": scalar pairs until a nested value starts.
    loop {
        rest = rest
            .trim_start()
            .strip_prefix(',')
            .unwrap_or(rest)
            .trim_start();
        let (key, after) = json_string(rest)?;
        let after = after.trim_start().strip_prefix(':')?.trim_start();
        let (value, after) = scalar(after)?;
        if key == "id" {
            return id_value(value);
        }
        rest = after;
    }
}

/// The `id` of a message whose end is `tail`, when `id` is its last or next-to-last member
/// (`…,"jsonrpc":"2.0","id":7}` or `…,"id":"a","jsonrpc":"2.0"}`).
fn trailing_id(tail: &[u8]) -> Option<serde_json::Value> {
    let text = String::from_utf8_lossy(tail);
    let text = text.trim_end().strip_suffix('}')?;
    let mut end = text;
    for _ in 0..2 {
        let start = end.rfind("\"id\"")?;
        let candidate = &end[start..];
        let (_, after) = json_string(candidate)?;
        let after = after.trim_start().strip_prefix(':')?.trim_start();
        if let Some((value, rest)) = scalar(after) {
            let rest = rest.trim_start();
            let tail_ok = rest.is_empty()
                || rest
                    .strip_prefix(',')
                    .is_some_and(|r| r.trim() == "\"jsonrpc\":\"2.0\"");
            if tail_ok {
                return id_value(value);
            }
        }
        end = &end[..start];
    }
    None
}

/// A JSON string at the start of `text` (its unescaped content) and what follows it.
fn json_string(text: &str) -> Option<(String, &str)> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    let value = stream.next()?.ok()?;
    let used = stream.byte_offset();
    match value {
        serde_json::Value::String(s) => Some((s, &text[used..])),
        _ => None,
    }
}

/// A JSON scalar (string, number, true/false/null) at the start of `text`, and what follows.
fn scalar(text: &str) -> Option<(serde_json::Value, &str)> {
    if text.starts_with(['{', '[']) {
        return None;
    }
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    let value = stream.next()?.ok()?;
    let used = stream.byte_offset();
    Some((value, &text[used..]))
}

/// A valid JSON-RPC id: a string or an integer.
fn id_value(value: serde_json::Value) -> Option<serde_json::Value> {
    match &value {
        serde_json::Value::String(_) => Some(value),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Some(value),
        _ => None,
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ReplyLimit<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(out.remaining());
                out.put_slice(&this.pending[..n]);
                this.pending.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.end_after_pending {
                return Poll::Ready(Ok(()));
            }
            if !this.unread.is_empty() {
                let before = out.filled().len();
                this.process(out);
                if out.filled().len() > before {
                    return Poll::Ready(Ok(()));
                }
                // everything consumed was discarded, or an error line is now pending
                continue;
            }
            let mut buf = ReadBuf::new(&mut this.read_buf);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    if n == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    this.unread = 0..n;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn filtered(input: &[u8], limit: usize) -> String {
        // a reader handing out small pieces, so lines straddle reads
        let reader = tokio_test_reader(input);
        let mut limited = ReplyLimit::new(reader, limit);
        let mut out = Vec::new();
        limited.read_to_end(&mut out).await.expect("read");
        String::from_utf8(out).expect("utf-8")
    }

    /// Hands out its input 7 bytes at a time, so lines straddle reads.
    fn tokio_test_reader(input: &[u8]) -> impl AsyncRead + Unpin {
        struct Chunked(std::collections::VecDeque<u8>);
        impl AsyncRead for Chunked {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
                out: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let n = self.0.len().min(7).min(out.remaining());
                let bytes: Vec<u8> = self.0.drain(..n).collect();
                out.put_slice(&bytes);
                Poll::Ready(Ok(()))
            }
        }
        Chunked(input.iter().copied().collect())
    }

    #[tokio::test]
    async fn lines_within_the_limit_pass_unchanged() {
        let input = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n{\"a\":1}\n";
        assert_eq!(filtered(input, 64).await.as_bytes(), input);
    }

    #[tokio::test]
    async fn an_oversized_reply_becomes_an_error_for_its_id() {
        let big = "x".repeat(500);
        let input = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{{\"text\":\"{big}\"}}}}\n{{\"jsonrpc\":\"2.0\",\"id\":43,\"result\":{{}}}}\n"
        );
        let out = filtered(input.as_bytes(), 100).await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert_eq!(lines[0].len(), 100, "the cut prefix");
        let error: serde_json::Value = serde_json::from_str(lines[1]).expect("error line");
        assert_eq!(error["id"], 42);
        assert_eq!(error["error"]["code"], OVERSIZED_CODE);
        let message = error["error"]["message"].as_str().expect("message");
        assert!(message.contains("100 byte limit"), "{message}");
        assert!(message.contains("--stdio-max-reply-bytes"), "{message}");
        assert_eq!(lines[2], "{\"jsonrpc\":\"2.0\",\"id\":43,\"result\":{}}");
    }

    #[tokio::test]
    async fn the_id_is_found_at_the_end_as_the_typescript_sdk_writes_it() {
        let big = "y".repeat(300);
        let input = format!(
            "{{\"result\":{{\"content\":[{{\"text\":\"{big}\"}}]}},\"jsonrpc\":\"2.0\",\"id\":\"req-7\"}}\n"
        );
        let out = filtered(input.as_bytes(), 50).await;
        let error: serde_json::Value =
            serde_json::from_str(out.lines().nth(1).expect("error line")).expect("json");
        assert_eq!(error["id"], "req-7");
    }

    #[tokio::test]
    async fn a_nested_id_is_not_taken_for_the_message_id() {
        let big = "z".repeat(300);
        let input = format!("{{\"result\":{{\"id\":5,\"text\":\"{big}\"}},\"extra\":1}}\n");
        let out = filtered(input.as_bytes(), 50).await;
        // no readable id: the stream ends after the cut line
        assert_eq!(out.lines().count(), 1, "{out}");
        assert_eq!(out.lines().next().map(str::len), Some(50));
    }

    #[test]
    fn ids_are_read_only_at_the_top_level() {
        assert_eq!(
            reply_id(br#"{"jsonrpc":"2.0","id":3,"result":{"#),
            Some(serde_json::json!(3))
        );
        assert_eq!(
            reply_id(br#"{ "jsonrpc" : "2.0" , "id" : "a\"b" , "result""#),
            Some(serde_json::json!("a\"b"))
        );
        assert_eq!(reply_id(br#"{"result":{"id":3"#), None);
        assert_eq!(reply_id(br#"{"jsonrpc":"2.0","id":1.5,"result""#), None);
        assert_eq!(
            trailing_id(br#"xx"}]},"id":9,"jsonrpc":"2.0"}"#),
            Some(serde_json::json!(9))
        );
        assert_eq!(trailing_id(br#"xx","id":9},"more":1}"#), None);
    }
}
