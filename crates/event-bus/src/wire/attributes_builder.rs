//! [`AttributesBuilder`]: CloudEvents attributes collected from name/value
//! pairs (binary-mode headers, a structured object's members), checked once
//! all are in.

use super::parse_time;
use crate::{
    Attributes,
    attributes::SPEC_VERSION,
    error::{AttributeError, WireError},
};

/// Collects attributes from name/value pairs, catching conflicting duplicates.
#[derive(Default)]
pub(crate) struct AttributesBuilder {
    id: Option<String>,
    source: Option<String>,
    ty: Option<String>,
    specversion: Option<String>,
    time: Option<String>,
    subject: Option<String>,
    datacontenttype: Option<String>,
    dataschema: Option<String>,
    extensions: std::collections::BTreeMap<String, String>,
}

impl AttributesBuilder {
    /// Sets the attribute a binary-mode header names, its prefix stripped:
    /// header names are case-insensitive, attribute names lowercase.
    pub(crate) fn set_from_header(&mut self, name: &str, value: &str) -> Result<(), WireError> {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.set(&name.to_ascii_lowercase(), value)
        } else {
            // The usual case, without a lowercase copy per header.
            self.set(name, value)
        }
    }

    /// Sets the attribute `name` (lowercase), refusing a second, different value.
    pub(super) fn set(&mut self, name: &str, value: &str) -> Result<(), WireError> {
        let slot = match name {
            "id" => &mut self.id,
            "source" => &mut self.source,
            "type" => &mut self.ty,
            "specversion" => &mut self.specversion,
            "time" => &mut self.time,
            "subject" => &mut self.subject,
            "datacontenttype" => &mut self.datacontenttype,
            "dataschema" => &mut self.dataschema,
            _ => {
                crate::attributes::validate_extension_name(name)?;
                return match self.extensions.get(name) {
                    Some(old) if old != value => {
                        Err(WireError::DuplicateAttribute(name.to_owned()))
                    }
                    _ => {
                        self.extensions.insert(name.to_owned(), value.to_owned());
                        Ok(())
                    }
                };
            }
        };
        match slot {
            Some(old) if old != value => Err(WireError::DuplicateAttribute(name.to_owned())),
            _ => {
                *slot = Some(value.to_owned());
                Ok(())
            }
        }
    }

    /// The content type property wins over a `ce-datacontenttype` header.
    pub(crate) fn set_content_type(&mut self, value: &str) {
        self.datacontenttype = Some(value.to_owned());
    }

    /// The attributes, once the required ones are there and all are valid.
    pub(crate) fn build(self) -> Result<Attributes, WireError> {
        let specversion = self
            .specversion
            .ok_or(AttributeError::Missing("specversion"))?;
        if specversion != SPEC_VERSION {
            return Err(AttributeError::UnsupportedSpecVersion(specversion).into());
        }
        let attributes = Attributes {
            id: self.id.ok_or(AttributeError::Missing("id"))?,
            source: self.source.ok_or(AttributeError::Missing("source"))?,
            ty: self.ty.ok_or(AttributeError::Missing("type"))?,
            specversion,
            time: self.time.as_deref().map(parse_time).transpose()?,
            subject: self.subject,
            datacontenttype: self.datacontenttype,
            dataschema: self.dataschema,
            extensions: self.extensions,
        };
        attributes.validate()?;
        Ok(attributes)
    }
}
