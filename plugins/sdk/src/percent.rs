//! Percent-encoding of object keys and query values (RFC 3986): S3 signs
//! exactly this form, and Supabase accepts it in paths.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// As [`COMPONENT`], keeping `/` so that a key's folders stay folders.
const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// Escapes a query value or a single path segment (`/` too), with uppercase hex.
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// Escapes a key for a URL path, keeping its `/`.
pub fn encode_path(text: &str) -> String {
    utf8_percent_encode(text, PATH).to_string()
}

/// Undoes `%XX` escapes; a `%` not followed by two hex digits stays as it
/// is. `None` when the bytes are not UTF-8.
pub fn decode(text: &str) -> Option<String> {
    percent_decode_str(text).decode_utf8().ok().map(Into::into)
}

/// As [`decode`], with bytes that are not UTF-8 replaced by U+FFFD: for text
/// that is only shown.
pub fn decode_lossy(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_stray_percents_stay() {
        let key = "folder/a b&c=ü~-_.txt";
        assert_eq!(encode_path(key), "folder/a%20b%26c%3D%C3%BC~-_.txt");
        assert_eq!(encode_component(key), "folder%2Fa%20b%26c%3D%C3%BC~-_.txt");
        assert_eq!(decode(&encode_component(key)).as_deref(), Some(key));
        assert_eq!(decode("100%").as_deref(), Some("100%"));
        assert_eq!(decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(decode("%FF"), None);
        assert_eq!(decode_lossy("a%FF"), "a\u{FFFD}");
    }
}
