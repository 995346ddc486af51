//! Reading CloudTrail log files for audits: the records of one file, tolerant of
//! fields AWS adds over time (only what we use is typed).

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    #[serde(default)]
    pub event_version: String,
    #[serde(default, rename = "eventID")]
    pub event_id: String,
    #[serde(default)]
    pub event_time: String,
    #[serde(default)]
    pub event_source: String,
    #[serde(default)]
    pub event_name: String,
    #[serde(default)]
    pub aws_region: String,
    #[serde(default, rename = "sourceIPAddress")]
    pub source_ip_address: String,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub recipient_account_id: String,
    #[serde(default)]
    pub user_identity: Value,
    #[serde(default)]
    pub request_parameters: Value,
    #[serde(default)]
    pub response_elements: Value,
    #[serde(default)]
    pub additional_event_data: Value,
}

#[derive(Deserialize)]
struct LogFile {
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

/// The records of a decompressed log file. Event versions of major 1 are read
/// (1.08 and 1.09 are in use); others are skipped by the caller's choice. One record
/// that does not fit [`Record`] fails the whole file: audits use [`parse_log_lenient`].
pub fn parse_log(json: &[u8]) -> Result<Vec<Record>, serde_json::Error> {
    serde_json::from_slice::<LogFile>(json).map(|f| f.records)
}

/// The records of a log file, read one by one: a record that cannot be read (a null
/// where a string belongs, not an object) is left out and counted, and never costs the
/// rest of its file. The file itself must be JSON with a `Records` array.
#[derive(Debug, Default)]
pub struct LenientLog {
    pub records: Vec<Record>,
    /// Records left out, and why the first of them was.
    pub skipped: u64,
    pub first_problem: Option<String>,
}

pub fn parse_log_lenient(json: &[u8]) -> Result<LenientLog, serde_json::Error> {
    serde_json::from_slice::<LenientFile>(json).map(|f| f.0)
}

struct LenientFile(LenientLog);

impl<'de> Deserialize<'de> for LenientFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FileVisitor;
        impl<'de> serde::de::Visitor<'de> for FileVisitor {
            type Value = LenientFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a CloudTrail log file: an object with a Records array")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<LenientFile, A::Error> {
                let mut log = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "Records" && log.is_none() {
                        log = Some(map.next_value::<LenientRecords>()?.0);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                log.map(LenientFile)
                    .ok_or_else(|| serde::de::Error::missing_field("Records"))
            }
        }
        d.deserialize_map(FileVisitor)
    }
}

struct LenientRecords(LenientLog);

impl<'de> Deserialize<'de> for LenientRecords {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SeqVisitor;
        impl<'de> serde::de::Visitor<'de> for SeqVisitor {
            type Value = LenientRecords;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of CloudTrail records")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<LenientRecords, A::Error> {
                let mut log = LenientLog::default();
                // Each element is valid JSON (or the file is not); its shape is checked alone.
                while let Some(value) = seq.next_element::<Value>()? {
                    match Record::deserialize(value) {
                        Ok(r) => log.records.push(r),
                        Err(e) => {
                            log.skipped += 1;
                            log.first_problem.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                Ok(LenientRecords(log))
            }
        }
        d.deserialize_seq(SeqVisitor)
    }
}

impl Record {
    /// The string at `path`: `Ok(None)` when it (or an object on the way) is absent or
    /// null, an error when something else stands where a string belongs.
    pub fn text_at<'a>(v: &'a Value, path: &[&str]) -> Result<Option<&'a str>, FieldError> {
        let mut cur = v;
        for (i, p) in path.iter().enumerate() {
            cur = match cur {
                Value::Object(m) => match m.get(*p) {
                    Some(next) => next,
                    None => return Ok(None),
                },
                Value::Null => return Ok(None),
                other => {
                    return Err(FieldError::NotAnObject {
                        path: path[..i].join("."),
                        found: kind(other),
                    })
                }
            };
        }
        match cur {
            Value::String(s) => Ok(Some(s)),
            other => Err(FieldError::NotAString {
                path: path.join("."),
                found: kind(other),
            }),
        }
    }

    pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
        let mut cur = v;
        for p in path {
            cur = cur.get(p)?;
        }
        cur.as_str()
    }

    pub fn major_version_known(&self) -> bool {
        self.event_version.split('.').next() == Some("1")
    }
}

/// Something other than a string, or an object on the way to one, where a record's
/// field belongs: the record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("{path} is {found}, not an object")]
    NotAnObject { path: String, found: &'static str },
    #[error("{path} is {found}, not a string")]
    NotAString { path: String, found: &'static str },
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records_and_ignores_unknown_fields() {
        let json = br#"{"Records":[{"eventVersion":"1.09","eventID":"e1","sourceIPAddress":"192.0.2.1","eventTime":"2026-11-25T10:00:00Z","eventSource":"sts.amazonaws.com","eventName":"AssumeRoleWithSAML","newField":{"x":1},"userIdentity":{"type":"SAMLUser","userName":"alice"},"requestParameters":{"roleArn":"arn:aws:iam::1:role/A"}}]}"#;
        let r = parse_log(json).unwrap();
        assert_eq!(r[0].event_name, "AssumeRoleWithSAML");
        assert_eq!(r[0].event_id, "e1");
        assert_eq!(r[0].source_ip_address, "192.0.2.1");
        assert!(r[0].major_version_known());
        assert_eq!(Record::str_at(&r[0].user_identity, &["userName"]), Some("alice"));
        assert_eq!(
            Record::str_at(&r[0].request_parameters, &["roleArn"]),
            Some("arn:aws:iam::1:role/A")
        );
    }

    #[test]
    fn a_record_that_cannot_be_read_is_skipped_alone() {
        let json = br#"{"Records":[
            {"eventVersion":"1.08","eventID":"a","eventTime":"2026-11-25T10:00:00Z","sourceIPAddress":null},
            7,
            {"eventVersion":"1.08","eventID":"b","eventTime":"2026-11-25T10:00:00Z","userIdentity":null,"requestParameters":null,"errorCode":null}
        ],"extra":{"x":[1,2]}}"#;
        let log = parse_log_lenient(json).unwrap();
        assert_eq!(log.records.len(), 1);
        assert_eq!(log.records[0].event_id, "b");
        assert_eq!(log.skipped, 2);
        assert!(log.first_problem.unwrap().contains("null"));
        assert!(parse_log(json).is_err(), "the strict reader fails the whole file");
        assert!(parse_log_lenient(b"{\"Records\":[{}").is_err());
        assert!(parse_log_lenient(b"{\"NotRecords\":[]}").is_err());
        assert!(parse_log_lenient(b"[]").is_err());
    }

    #[test]
    fn text_at_tells_absent_from_wrong() {
        let v: Value = serde_json::json!({"a": {"b": "x", "n": null, "k": 1}, "z": null, "s": "str"});
        assert_eq!(Record::text_at(&v, &["a", "b"]), Ok(Some("x")));
        assert_eq!(Record::text_at(&v, &["a", "missing"]), Ok(None));
        assert_eq!(Record::text_at(&v, &["z", "b"]), Ok(None));
        assert!(Record::text_at(&v, &["a", "n"]).is_err());
        assert!(Record::text_at(&v, &["a", "k"]).is_err());
        assert!(Record::text_at(&v, &["s", "b"]).is_err());
    }
}
