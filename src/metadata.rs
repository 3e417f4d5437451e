//! OCF meta-data, generated from the parameter table with quick-xml.
//!
//! Two dialects from one table: OCF 1.0 (valid against resource-agents' ra-api-1.dtd,
//! which ocf-tester checks) and OCF 1.1 (adds `reloadable` and the `reload-agent`
//! action, which Pacemaker only uses when the agent declares `<version>1.1</version>`).
//! The resource manager announces its API version in OCF_RA_VERSION_MAJOR/MINOR;
//! without it we speak 1.0.

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use crate::params::Agent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OcfVersion {
    pub major: u32,
    pub minor: u32,
}

impl OcfVersion {
    pub const V1_0: OcfVersion = OcfVersion { major: 1, minor: 0 };
    pub const V1_1: OcfVersion = OcfVersion { major: 1, minor: 1 };

    /// From OCF_RA_VERSION_MAJOR/MINOR; anything unparsable or absent means 1.0.
    pub fn from_env(major: Option<&str>, minor: Option<&str>) -> OcfVersion {
        let major = major.and_then(|m| m.trim().parse().ok());
        let minor = minor.and_then(|m| m.trim().parse().ok()).unwrap_or(0);
        match major {
            Some(major) => OcfVersion { major, minor },
            None => OcfVersion::V1_0,
        }
    }

    pub fn has_reload_agent(self) -> bool {
        self >= OcfVersion::V1_1
    }
}

pub fn render(agent: Agent, version: OcfVersion) -> String {
    let ocf_1_1 = version.has_reload_agent();
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into a Vec cannot fail; `expect` documents that rather than hiding an error.
    write_document(&mut w, agent, ocf_1_1).expect("writing XML into memory");
    let mut xml = String::from_utf8(w.into_inner()).expect("quick-xml writes UTF-8");
    xml.push('\n');
    xml
}

fn write_document(w: &mut Writer<Vec<u8>>, agent: Agent, ocf_1_1: bool) -> std::io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", None, None)))?;
    w.write_event(Event::DocType(BytesText::from_escaped(
        "resource-agent SYSTEM \"ra-api-1.dtd\"",
    )))?;
    w.create_element("resource-agent")
        .with_attribute(("name", agent.type_name()))
        .with_attribute(("version", env!("CARGO_PKG_VERSION")))
        .write_inner_content(|w| {
            w.create_element("version")
                .write_text_content(BytesText::new(if ocf_1_1 { "1.1" } else { "1.0" }))?;
            w.create_element("longdesc")
                .with_attribute(("lang", "en"))
                .write_text_content(BytesText::new(agent.longdesc()))?;
            w.create_element("shortdesc")
                .with_attribute(("lang", "en"))
                .write_text_content(BytesText::new(agent.shortdesc()))?;
            w.create_element("parameters").write_inner_content(|w| {
                for p in agent.params() {
                    let mut el = w
                        .create_element("parameter")
                        .with_attribute(("name", p.name))
                        .with_attribute(("unique", if p.unique { "1" } else { "0" }))
                        .with_attribute(("required", if p.required { "1" } else { "0" }));
                    if ocf_1_1 && p.reloadable {
                        el = el.with_attribute(("reloadable", "1"));
                    }
                    el.write_inner_content(|w| {
                        w.create_element("longdesc")
                            .with_attribute(("lang", "en"))
                            .write_text_content(BytesText::new(p.longdesc))?;
                        w.create_element("shortdesc")
                            .with_attribute(("lang", "en"))
                            .write_text_content(BytesText::new(p.shortdesc))?;
                        let mut content = w
                            .create_element("content")
                            .with_attribute(("type", p.kind.ocf_name()));
                        if !p.default.is_empty() {
                            content = content.with_attribute(("default", p.default));
                        }
                        content.write_empty()?;
                        Ok(())
                    })?;
                }
                Ok(())
            })?;
            w.create_element("actions").write_inner_content(|w| {
                for a in agent.actions().iter().filter(|a| ocf_1_1 || !a.ocf_1_1) {
                    let mut el = w
                        .create_element("action")
                        .with_attribute(("name", a.name))
                        .with_attribute(("timeout", a.timeout));
                    if let Some(i) = a.interval {
                        el = el.with_attribute(("interval", i));
                    }
                    if let Some(d) = a.depth {
                        el = el.with_attribute(("depth", d));
                    }
                    el.write_empty()?;
                }
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_env() {
        assert_eq!(OcfVersion::from_env(None, None), OcfVersion::V1_0);
        assert_eq!(OcfVersion::from_env(Some("1"), Some("1")), OcfVersion::V1_1);
        assert_eq!(OcfVersion::from_env(Some("1"), None), OcfVersion::V1_0);
        assert_eq!(OcfVersion::from_env(Some("x"), Some("1")), OcfVersion::V1_0);
        assert!(OcfVersion::from_env(Some("2"), Some("0")).has_reload_agent());
    }

    #[test]
    fn dialects_differ_only_in_1_1_features() {
        let v10 = render(Agent::Ipsec, OcfVersion::V1_0);
        let v11 = render(Agent::Ipsec, OcfVersion::V1_1);
        assert!(v10.contains("<version>1.0</version>"));
        assert!(!v10.contains("reloadable") && !v10.contains("reload-agent"));
        assert!(v11.contains("<version>1.1</version>"));
        assert!(v11.contains(
            r#"<parameter name="fallbacktunnel" unique="1" required="0" reloadable="1">"#
        ));
        assert!(v11.contains(r#"<action name="reload-agent""#));
        for p in Agent::Ipsec.params() {
            assert!(v10.contains(&format!("<parameter name=\"{}\"", p.name)));
        }
    }

    #[test]
    fn text_is_escaped() {
        let xml = render(Agent::Ipsec, OcfVersion::V1_0);
        assert!(xml.contains("&apos;.&apos;") || xml.contains("'.'"));
        assert!(!xml.contains("<>"));
    }
}
