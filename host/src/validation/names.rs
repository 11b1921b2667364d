//! File names that are safe to record, show and write: a name comes from a
//! client (an upload's own name, `--name`, a multipart filename) and later
//! becomes a file name at a download's destination, so it must not climb out
//! of a directory, hide its real extension, or name a device.

use unicode_normalization::UnicodeNormalization as _;

/// The longest file name most file systems accept, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// What an unusable name (empty, only dots) becomes.
const FALLBACK: &str = "file";

/// Extensions longer than this are not kept whole when a name is cut short:
/// past this it is more likely text after a dot than a file type.
const MAX_KEPT_EXTENSION_BYTES: usize = 32;

/// A safe version of `name`: path separators become `_` (the parts kept, the
/// `.` and `..` ones dropped), control characters become `_`, bidirectional
/// formatting characters are removed, runs of dots become one, a reserved
/// Windows device name gets a `_` in front, the result is Unicode NFC and at
/// most 255 bytes (cut in the stem, the extension kept). Names that need none
/// of this come back unchanged.
pub fn sanitize(name: &str) -> String {
    let joined =
        name.split(['/', '\\']).filter(|part| !matches!(part.trim(), "" | "." | "..")).collect::<Vec<_>>().join("_");
    let filtered: String =
        joined.chars().filter(|c| !is_bidi_control(*c)).map(|c| if c.is_control() { '_' } else { c }).collect();
    // After filtering: removing a bidi mark can bring a base character and
    // its combining mark together.
    let normalized: String = filtered.nfc().collect();
    let mut out = collapse_dots(&normalized);
    out = trim(&out).to_string();
    if is_reserved_on_windows(&out) {
        out.insert(0, '_');
    }
    out = truncate(&out, MAX_NAME_BYTES);
    let out = trim(&out);
    if out.is_empty() || out.chars().all(|c| c == '.') { FALLBACK.to_string() } else { out.to_string() }
}

/// Characters that reorder how text is displayed: U+202E makes
/// "invoice\u{202E}fdp.exe" look like "invoiceexe.pdf".
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn collapse_dots(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if !(c == '.' && out.ends_with('.')) {
            out.push(c);
        }
    }
    out
}

/// Surrounding whitespace is invisible in listings, and Windows drops
/// trailing dots and spaces, so that "a.txt." and "a.txt" would be one file.
fn trim(name: &str) -> &str {
    name.trim().trim_end_matches(['.', ' '])
}

/// CON, PRN, AUX, NUL, COM1-9 and LPT1-9 (also with the superscript digits
/// Windows accepts), whatever the case and whatever follows the first dot:
/// Windows opens the device for "nul.txt" too.
fn is_reserved_on_windows(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default().trim_end().to_uppercase();
    match stem.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" => true,
        _ => {
            let (prefix, digit) = stem.split_at(stem.char_indices().nth(3).map_or(stem.len(), |(i, _)| i));
            matches!(prefix, "COM" | "LPT")
                && digit.chars().count() == 1
                && digit.chars().all(|d| matches!(d, '1'..='9' | '¹' | '²' | '³'))
        }
    }
}

/// Cuts `name` to at most `max` bytes at a character boundary, keeping its
/// extension when it has a short one.
fn truncate(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let extension = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= MAX_KEPT_EXTENSION_BYTES => &name[dot..],
        _ => "",
    };
    let stem = &name[..name.len() - extension.len()];
    format!("{}{extension}", &stem[..stem.floor_char_boundary(max - extension.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_unchanged() {
        for name in ["report.pdf", "Übersicht 2024.xlsx", ".env", "a-b_c (1).tar.gz", "数据.csv"] {
            assert_eq!(sanitize(name), name);
        }
    }

    #[test]
    fn separators_and_dot_parts_go() {
        assert_eq!(sanitize("../../etc/passwd"), "etc_passwd");
        assert_eq!(sanitize("reports/2024/q1.pdf"), "reports_2024_q1.pdf");
        assert_eq!(sanitize("C:\\Users\\me\\cv.doc"), "C:_Users_me_cv.doc");
        assert_eq!(sanitize("a..b...pdf"), "a.b.pdf");
        for name in ["..", ".", "/", "../..", "", "  ", "...."] {
            assert_eq!(sanitize(name), "file", "{name:?}");
        }
    }

    #[test]
    fn control_and_bidi_characters_go() {
        assert_eq!(sanitize("a\0b\n.txt"), "a_b_.txt");
        assert_eq!(sanitize("x\u{7f}\u{9b}y"), "x__y");
        assert_eq!(sanitize("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(sanitize("\u{2067}a\u{2069}\u{200F}.txt"), "a.txt");
    }

    #[test]
    fn reserved_windows_names_get_a_prefix() {
        for (name, safe) in [
            ("CON", "_CON"),
            ("nul.txt", "_nul.txt"),
            ("Com1.tar.gz", "_Com1.tar.gz"),
            ("lpt9", "_lpt9"),
            ("COM²", "_COM²"),
            ("aux .log", "_aux .log"),
        ] {
            assert_eq!(sanitize(name), safe);
        }
        for name in ["CONSOLE.txt", "com10", "COM0", "nullable.rs", "lpt.txt"] {
            assert_eq!(sanitize(name), name);
        }
    }

    #[test]
    fn trailing_dots_and_spaces_go() {
        assert_eq!(sanitize(" a.txt. "), "a.txt");
    }

    #[test]
    fn names_are_nfc() {
        // "é" as e + combining acute, and split by a bidi mark.
        assert_eq!(sanitize("cafe\u{301}.txt"), "caf\u{e9}.txt");
        assert_eq!(sanitize("cafe\u{200E}\u{301}.txt"), "caf\u{e9}.txt");
    }

    #[test]
    fn long_names_keep_their_extension_and_whole_characters() {
        let long = format!("{}.pdf", "a".repeat(296));
        let safe = sanitize(&long);
        assert_eq!(safe.len(), 255);
        assert!(safe.ends_with("aaa.pdf"));
        // Three-byte characters: the cut may not split one.
        let wide = format!("{}.txt", "€".repeat(100));
        let safe = sanitize(&wide);
        assert!(safe.len() <= 255 && safe.len() > 250, "{}", safe.len());
        assert!(safe.ends_with("€.txt"));
        // An "extension" too long to be one is cut with the rest.
        let odd = format!("x.{}", "b".repeat(300));
        assert_eq!(sanitize(&odd).len(), 255);
        assert!(sanitize(&odd).starts_with("x.b"));
    }

    #[test]
    fn sanitizing_is_idempotent() {
        for name in ["../a/./b", "con.txt", "a\u{202E}b", &"é".repeat(200), "x. . ."] {
            let once = sanitize(name);
            assert_eq!(sanitize(&once), once, "{name:?}");
        }
    }
}
