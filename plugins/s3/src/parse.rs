//! Reading what S3 sends back: small XML documents, dates, and the
//! percent-encoding this adapter uses for metadata values.

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

/// An XML element, with its text and child elements; enough for S3's
/// responses, which carry no mixed content and no attributes that matter.
#[derive(Debug, Default)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child called `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses a document into its root element. Namespaces are dropped: S3
/// answers in its own namespace, compatible stores sometimes in none.
pub fn xml(text: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    loop {
        let event =
            reader.read_event().map_err(|e| format!("malformed XML at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(start) => {
                stack.push(Element { name: start.local_name().as_ref().to_string(), ..Element::default() })
            }
            Event::Empty(start) => {
                let element = Element { name: start.local_name().as_ref().to_string(), ..Element::default() };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or("unbalanced XML: a closing tag without an opening one")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::Text(text) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&text.xml10_content());
                }
            }
            Event::CData(data) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&data.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = reference.xml10_content();
                        resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown XML entity &{name};"))?
                            .to_string()
                    }
                    Err(e) => return Err(format!("bad XML character reference: {e}")),
                };
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&resolved);
                }
            }
            Event::Eof => return Err("the XML document ended before its root element did".into()),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
}

/// Escapes text for an XML element body.
pub fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn epoch_secs(year: i64, month: u32, day: u32, h: u64, m: u64, s: u64) -> Option<u64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// `2024-05-01T12:34:56.000Z`, as ListObjectsV2 gives `LastModified`.
pub fn iso8601(text: &str) -> Option<u64> {
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<u64>().ok();
    let separators_ok = text.get(4..5) == Some("-")
        && text.get(7..8) == Some("-")
        && text.get(10..11) == Some("T")
        && text.ends_with('Z');
    if !separators_ok {
        return None;
    }
    epoch_secs(num(0..4)? as i64, num(5..7)? as u32, num(8..10)? as u32, num(11..13)?, num(14..16)?, num(17..19)?)
}

/// `Wed, 01 May 2024 12:34:56 GMT` (RFC 7231's preferred form), as HeadObject
/// gives `Last-Modified`.
pub fn http_date(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| m == month)? as u32 + 1;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    epoch_secs(year.parse().ok()?, month, day.parse().ok()?, h, m, s)
}

/// Reverses `sigv4::uri_encode` for metadata values; invalid UTF-8 is replaced.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_documents() {
        let doc = xml(r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The key &lt;a&amp;b&gt; does not exist&#33;</Message><Key>a&amp;b</Key></Error>"#)
        .unwrap();
        assert_eq!(doc.name, "Error");
        assert_eq!(doc.text_of("Code"), Some("NoSuchKey"));
        assert_eq!(doc.text_of("Message"), Some("The key <a&b> does not exist!"));
        assert!(xml("<Error><Code>x</Error>").is_err());
        assert!(xml("not xml").is_err());
    }

    #[test]
    fn list_documents() {
        let doc =
            xml(r#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>true</IsTruncated>
<Contents><Key>p/a</Key><Size>3</Size></Contents><Contents><Key>p/b</Key><Size>4</Size></Contents><Prefix/>
<NextContinuationToken>tok</NextContinuationToken></ListBucketResult>"#)
            .unwrap();
        let keys: Vec<_> = doc.children("Contents").filter_map(|c| c.text_of("Key")).collect();
        assert_eq!(keys, ["p/a", "p/b"]);
        assert_eq!(doc.text_of("NextContinuationToken"), Some("tok"));
        assert_eq!(doc.text_of("Prefix"), Some(""));
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601("2013-05-24T00:00:00.000Z"), Some(1_369_353_600));
        assert_eq!(iso8601("2000-02-29T12:34:56Z"), Some(951_827_696));
        assert_eq!(http_date("Fri, 24 May 2013 00:00:00 GMT"), Some(1_369_353_600));
        assert_eq!(iso8601("yesterday"), None);
        assert_eq!(http_date("Fri, 24 Mai 2013 00:00:00 GMT"), None);
    }

    #[test]
    fn percent_decoding_reverses_encoding() {
        let name = "Bericht für 50% – März.pdf";
        assert_eq!(percent_decode(&crate::sigv4::uri_encode(name, false)), name);
        assert_eq!(percent_decode("100%"), "100%");
    }
}
