//! What an upload must be before any provider sees it: rules from
//! `[host.validation]`, `[providers.NAME.validation]` and
//! `[providers.NAME.validation.purpose.PURPOSE]` (the most specific setting
//! wins, key by key), the type judged from the content's own bytes, and an
//! optional malware scan by clamd.
//!
//! - `names.rs`: safe file names
//! - `sniff.rs`: types from magic bytes
//! - `clamd.rs`: ClamAV's INSTREAM protocol

pub mod clamd;
pub mod names;
pub mod sniff;

use std::fmt;

use crate::body::{Body, BodyError};
use crate::config::{Config, ScanConfig};
use clamd::{Clamd, ClamdError, Verdict};

/// One entry of `allowed_types`: `type/subtype`, `type/*` or `*/*`, lowercase.
#[derive(Debug, Clone, PartialEq)]
pub struct TypePattern(String);

impl TypePattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let token = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c));
        let lower = text.trim().to_ascii_lowercase();
        let valid = match lower.split_once('/') {
            Some(("*", "*")) => true,
            Some((kind, "*")) => token(kind),
            Some((kind, subtype)) => token(kind) && token(subtype),
            None => false,
        };
        if !valid {
            return Err(format!(
                "{text:?} is not a MIME type pattern; write type/subtype or type/*, e.g. \"application/pdf\" or \"image/*\""
            ));
        }
        Ok(Self(lower))
    }

    pub fn matches(&self, mime: &str) -> bool {
        let mime = mime.to_ascii_lowercase();
        match self.0.split_once('/') {
            Some(("*", "*")) => true,
            Some((kind, "*")) => mime.split_once('/').is_some_and(|(k, _)| k == kind),
            _ => mime == self.0,
        }
    }
}

impl fmt::Display for TypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The size and type keys of one validation table; `None` where the table
/// leaves a key to a less specific one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub max_size: Option<u64>,
    pub allowed_types: Option<Vec<TypePattern>>,
    pub strict_types: Option<bool>,
}

/// A rule in force and the table that set it, for messages.
#[derive(Debug, Clone, PartialEq)]
struct Set<T> {
    value: T,
    table: String,
}

/// The rules for one upload, each key from the most specific table that sets it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    max_size: Option<Set<u64>>,
    allowed_types: Option<Set<Vec<TypePattern>>>,
    strict_types: Option<Set<bool>>,
}

impl Rules {
    /// The rules for an upload to `provider` for `purpose`.
    pub fn resolve(config: &Config, provider: &str, purpose: Option<&str>) -> Self {
        let mut rules = Rules::default();
        rules.overlay(&config.validation.rules, "[host.validation]".into());
        if let Some(validation) = config.providers.get(provider).map(|p| &p.validation) {
            rules.overlay(&validation.rules, format!("[providers.{provider}.validation]"));
            if let Some((purpose, set)) = purpose.and_then(|p| validation.purposes.get_key_value(p)) {
                rules.overlay(set, format!("[providers.{provider}.validation.purpose.{purpose}]"));
            }
        }
        rules
    }

    fn overlay(&mut self, set: &RuleSet, table: String) {
        if let Some(value) = set.max_size {
            self.max_size = Some(Set { value, table: table.clone() });
        }
        if let Some(value) = &set.allowed_types {
            self.allowed_types = Some(Set { value: value.clone(), table: table.clone() });
        }
        if let Some(value) = set.strict_types {
            self.strict_types = Some(Set { value, table });
        }
    }

    /// Whether no table sets any key.
    pub fn is_empty(&self) -> bool {
        self.max_size.is_none() && self.allowed_types.is_none() && self.strict_types.is_none()
    }

    /// Checks content against the size and type rules. `mime` is what the
    /// sender declared or the name suggests; the answer is the type sniffed
    /// from the content, to record.
    async fn check(&self, name: &str, size: u64, mime: &str, body: &Body) -> Result<String, Refusal> {
        if let Some(max) = self.max_size.as_ref().filter(|max| size > max.value) {
            return Err(Refusal::TooLarge { name: name.to_string(), size, max: max.value, table: max.table.clone() });
        }
        let head = sniff::head(body).await.map_err(|source| Refusal::Read { name: name.to_string(), source })?;
        let sniffed = sniff::sniff(&head, mime);
        if let Some(strict) = self.strict_types.as_ref().filter(|s| s.value)
            && let Some(claimed) = contradicted_claim(name, &sniffed)
        {
            return Err(Refusal::NameContradicts {
                name: name.to_string(),
                mime: sniffed.mime,
                claimed,
                table: strict.table.clone(),
            });
        }
        if let Some(allowed) = &self.allowed_types
            && !allowed.value.iter().any(|pattern| pattern.matches(&sniffed.mime))
        {
            return Err(Refusal::TypeNotAllowed {
                name: name.to_string(),
                mime: sniffed.mime,
                allowed: allowed.value.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                table: allowed.table.clone(),
            });
        }
        Ok(sniffed.mime)
    }
}

/// The type a name's extension claims, when the content contradicts it:
/// the content has another type's signature, or lacks the signature the
/// claimed type always has. None when the extension claims nothing.
fn contradicted_claim(name: &str, sniffed: &sniff::Sniffed) -> Option<String> {
    let guesses: Vec<String> = mime_guess::from_path(name).iter().map(|m| m.essence_str().to_string()).collect();
    let first = guesses.first()?.clone();
    let agrees = |claimed: &String| {
        claimed == &sniffed.mime
            // Both text: the name only refines what `infer` guessed.
            || (claimed.starts_with("text/") && sniffed.mime.starts_with("text/"))
            // Office documents, Java archives, e-books: zip files inside, and
            // `infer` does not look deep enough to tell every one apart.
            || (sniffed.mime == "application/zip" && is_zip_based(claimed))
    };
    let contradicted = if sniffed.from_signature {
        !guesses.iter().any(agrees)
    } else {
        guesses.iter().any(|g| sniff::expects_signature(g)) && !guesses.iter().any(agrees)
    };
    contradicted.then_some(first)
}

fn is_zip_based(mime: &str) -> bool {
    mime.starts_with("application/vnd.openxmlformats-officedocument.")
        || mime.starts_with("application/vnd.oasis.opendocument.")
        || matches!(
            mime,
            "application/java-archive" | "application/epub+zip" | "application/vnd.android.package-archive"
        )
}

/// Why an upload was refused. Each names the file, the rule, and where the
/// rule is configured.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{name} is {size} bytes; max_size in {table} is {max} bytes")]
    TooLarge { name: String, size: u64, max: u64, table: String },
    #[error("{name}: content is {mime}, not one of allowed_types in {table} ({allowed})")]
    TypeNotAllowed { name: String, mime: String, allowed: String, table: String },
    #[error("{name}: content is {mime} but the name says {claimed} (strict_types in {table})")]
    NameContradicts { name: String, mime: String, claimed: String, table: String },
    #[error("{name}: malware found by clamd: {signature} ([host.validation] scan)")]
    Infected { name: String, signature: String },
    #[error(
        "{name}: not scanned for malware: clamd at {address}: {source}; uploads are refused until it answers ([host.validation] scan_required = true)"
    )]
    ScanFailed { name: String, address: String, source: ClamdError },
    #[error("{name}: reading it for validation: {source}")]
    Read { name: String, source: BodyError },
}

/// The host's validation: the rules in the config, and the scanner.
pub struct Validator {
    scanner: Option<(Clamd, bool)>,
}

impl Validator {
    pub fn new(scan: Option<&ScanConfig>) -> Self {
        Self { scanner: scan.map(|s| (Clamd { address: s.clamd.clone(), timeout: s.timeout }, s.required)) }
    }

    /// Checks an upload against `rules`: size, type, then the malware scan,
    /// the costly one, last. Returns the MIME type to record: sniffed from
    /// the content, or `mime` as it is when no rule applies and no scanner is
    /// set (then nothing is read).
    pub async fn check(
        &self,
        rules: &Rules,
        name: &str,
        size: u64,
        mime: &str,
        body: &Body,
    ) -> Result<String, Refusal> {
        if rules.is_empty() && self.scanner.is_none() {
            return Ok(mime.to_string());
        }
        let mime = rules.check(name, size, mime, body).await?;
        let Some((clamd, required)) = &self.scanner else {
            return Ok(mime);
        };
        let mut scanned = body.try_clone().expect("upload bodies are files or buffers");
        // The scan is not part of sending: progress counts provider bytes only.
        if let Body::File(range) = &mut scanned {
            range.progress = None;
        }
        match clamd.scan(scanned).await {
            Ok(Verdict::Clean) => Ok(mime),
            Ok(Verdict::Infected(signature)) => Err(Refusal::Infected { name: name.to_string(), signature }),
            Err(ClamdError::Read(source)) => Err(Refusal::Read { name: name.to_string(), source }),
            Err(source) if *required => {
                Err(Refusal::ScanFailed { name: name.to_string(), address: clamd.address.to_string(), source })
            }
            Err(e) => {
                tracing::warn!(
                    "{name}: accepted without a malware scan ([host.validation] scan_required = false): clamd at {}: {e}",
                    clamd.address
                );
                Ok(mime)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_patterns() {
        let image = TypePattern::parse("Image/*").unwrap();
        assert!(image.matches("image/png") && !image.matches("application/pdf"));
        let pdf = TypePattern::parse("application/pdf").unwrap();
        assert!(pdf.matches("application/pdf") && !pdf.matches("application/pdfx"));
        assert!(TypePattern::parse("*/*").unwrap().matches("text/plain"));
        for bad in ["image", "image/", "*/png", "/pdf", "text/plain; charset=utf-8", "a b/c", ""] {
            assert!(TypePattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn sniffed(mime: &str, from_signature: bool) -> sniff::Sniffed {
        sniff::Sniffed { mime: mime.into(), from_signature }
    }

    #[test]
    fn names_that_contradict_content() {
        let png = sniffed("image/png", true);
        assert_eq!(contradicted_claim("report.pdf", &png).as_deref(), Some("application/pdf"));
        assert_eq!(contradicted_claim("notes.txt", &png).as_deref(), Some("text/plain"));
        assert_eq!(contradicted_claim("photo.png", &png), None);
        assert_eq!(contradicted_claim("no-extension", &png), None);
        assert_eq!(contradicted_claim("photo.JPG", &sniffed("image/jpeg", true)), None);
        // A PDF must start with %PDF; text under that name is not one.
        assert_eq!(contradicted_claim("a.pdf", &sniffed("text/plain", false)).as_deref(), Some("application/pdf"));
        assert_eq!(contradicted_claim("a.csv", &sniffed("text/csv", false)), None);
        assert_eq!(contradicted_claim("a.py", &sniffed("text/x-shellscript", true)), None);
        let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
        assert_eq!(contradicted_claim("a.docx", &sniffed("application/zip", true)), None);
        assert_eq!(contradicted_claim("a.docx", &sniffed(docx, true)), None);
    }
}
