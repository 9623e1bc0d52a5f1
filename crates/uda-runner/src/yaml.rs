//! A YAML tree that remembers where every value came from.
//!
//! `pipeline.yaml` is validated in several passes (shape, `${...}` references, sweeps, then against
//! each stage binary's `--describe`), and every error must point at a line and column. Typed serde
//! structs lose locations as soon as a value is moved around, so the pipeline is first read into
//! this small tree (via `serde_saphyr::Spanned`, which carries the parser's locations) and the
//! passes work on it.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// A 1-based line/column in the pipeline file; `line == 0` means unknown (e.g. a `--set` value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loc {
    pub line: u32,
    pub column: u32,
}

impl Loc {
    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One YAML value with the location of its node.
#[derive(Debug, Clone, PartialEq)]
pub struct Yaml {
    pub value: YamlValue,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq)]
pub enum YamlValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    /// Keys keep their own locations (errors about a key point at the key).
    Map(Vec<(Yaml, Yaml)>),
}

impl Yaml {
    pub fn new(value: YamlValue, loc: Loc) -> Self {
        Self { value, loc }
    }

    /// Parses a document; syntax errors carry serde-saphyr's location in their message.
    pub fn parse(text: &str) -> Result<Yaml, (String, Loc)> {
        if text.trim().is_empty() {
            return Ok(Yaml::new(YamlValue::Null, Loc { line: 1, column: 1 }));
        }
        serde_saphyr::from_str_with_options::<Yaml>(text, options()).map_err(|e| {
            let loc = e
                .location()
                .map(|l| Loc {
                    line: l.line() as u32,
                    column: l.column() as u32,
                })
                .unwrap_or_default();
            // The first line says what is wrong; the caller prints file:line:col itself.
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            (first, loc)
        })
    }

    pub fn type_name(&self) -> &'static str {
        match &self.value {
            YamlValue::Null => "null",
            YamlValue::Bool(_) => "a boolean",
            YamlValue::Int(_) => "an integer",
            YamlValue::Float(_) => "a number",
            YamlValue::Str(_) => "a string",
            YamlValue::Seq(_) => "a list",
            YamlValue::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            YamlValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Yaml, Yaml)]> {
        match &self.value {
            YamlValue::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under a string key of a mapping.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The display form of a mapping key (keys may be numbers in YAML).
    pub fn key_string(&self) -> String {
        match &self.value {
            YamlValue::Str(s) => s.clone(),
            _ => self.to_json().to_string(),
        }
    }

    /// Converts to JSON (params are handed to stages as JSON).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            YamlValue::Null => J::Null,
            YamlValue::Bool(b) => J::Bool(*b),
            YamlValue::Int(i) => J::from(*i),
            YamlValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            YamlValue::Str(s) => J::String(s.clone()),
            YamlValue::Seq(v) => J::Array(v.iter().map(Yaml::to_json).collect()),
            YamlValue::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.key_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Builds a tree from JSON, every node at `loc` (used for `--set` values and resolved refs).
    pub fn from_json(v: &serde_json::Value, loc: Loc) -> Yaml {
        use serde_json::Value as J;
        let value = match v {
            J::Null => YamlValue::Null,
            J::Bool(b) => YamlValue::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => YamlValue::Int(i),
                None => YamlValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => YamlValue::Str(s.clone()),
            J::Array(a) => YamlValue::Seq(a.iter().map(|x| Yaml::from_json(x, loc)).collect()),
            J::Object(o) => YamlValue::Map(
                o.iter()
                    .map(|(k, x)| {
                        (
                            Yaml::new(YamlValue::Str(k.clone()), loc),
                            Yaml::from_json(x, loc),
                        )
                    })
                    .collect(),
            ),
        };
        Yaml::new(value, loc)
    }
}

/// YAML 1.2 booleans only: `y`, `no`, `on` stay strings (a sweep over `[y, n]` means letters).
pub fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.strict_booleans = true;
    o
}

/// Parses one value (a `--set` value), with the same options as files.
pub fn parse_value(text: &str) -> Result<Yaml, String> {
    serde_saphyr::from_str_with_options::<Yaml>(text, options()).map_err(|e| e.to_string())
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<YamlValue>::deserialize(d)?;
        let loc = Loc {
            line: s.referenced.line() as u32,
            column: s.referenced.column() as u32,
        };
        Ok(Yaml {
            value: s.value,
            loc,
        })
    }
}

impl<'de> Deserialize<'de> for YamlValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = YamlValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<YamlValue, E> {
        Ok(YamlValue::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<YamlValue, E> {
        Ok(YamlValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<YamlValue, D::Error> {
        YamlValue::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<YamlValue, E> {
        Ok(YamlValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<YamlValue, E> {
        Ok(YamlValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<YamlValue, E> {
        Ok(i64::try_from(v)
            .map(YamlValue::Int)
            .unwrap_or(YamlValue::Float(v as f64)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<YamlValue, E> {
        Ok(i64::try_from(v)
            .map(YamlValue::Int)
            .unwrap_or(YamlValue::Float(v as f64)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<YamlValue, E> {
        Ok(i64::try_from(v)
            .map(YamlValue::Int)
            .unwrap_or(YamlValue::Float(v as f64)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<YamlValue, E> {
        Ok(YamlValue::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<YamlValue, E> {
        Ok(YamlValue::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<YamlValue, E> {
        Ok(YamlValue::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<YamlValue, A::Error> {
        let mut out = Vec::new();
        while let Some(x) = seq.next_element::<Yaml>()? {
            out.push(x);
        }
        Ok(YamlValue::Seq(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<YamlValue, A::Error> {
        let mut out: Vec<(Yaml, Yaml)> = Vec::new();
        while let Some(k) = map.next_key::<Yaml>()? {
            let v = map.next_value::<Yaml>()?;
            if let Some((prev, _)) = out.iter().find(|(p, _)| p.value == k.value) {
                return Err(de::Error::custom(format!(
                    "duplicate key '{}' (line {}, first at line {})",
                    k.key_string(),
                    k.loc.line,
                    prev.loc.line
                )));
            }
            out.push((k, v));
        }
        Ok(YamlValue::Map(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_types() {
        let y = Yaml::parse("a: 1\nb:\n  c: [x, 2.5]\n  d: ${params.seed}\n").unwrap();
        let b = y.get("b").unwrap();
        assert_eq!(y.get("a").unwrap().value, YamlValue::Int(1));
        let c = b.get("c").unwrap();
        assert_eq!(c.loc.line, 3);
        let YamlValue::Seq(items) = &c.value else {
            panic!()
        };
        assert_eq!(items[1].value, YamlValue::Float(2.5));
        assert_eq!(b.get("d").unwrap().as_str(), Some("${params.seed}"));
        let key_loc = b.as_map().unwrap()[1].0.loc;
        assert_eq!((key_loc.line, key_loc.column), (4, 3));
    }

    #[test]
    fn duplicate_keys_are_errors_with_lines() {
        let (msg, _) = Yaml::parse("stages:\n  a: {kind: x}\n  a: {kind: y}\n").unwrap_err();
        assert!(msg.contains("duplicate mapping key: a"), "{msg}");
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let (_, loc) = Yaml::parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(loc.is_known());
    }
}
