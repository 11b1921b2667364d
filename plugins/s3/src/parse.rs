//! Reading what S3 sends back: small XML documents.

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
}
