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
/// (1.08 and 1.09 are in use); others are skipped by the caller's choice.
pub fn parse_log(json: &[u8]) -> Result<Vec<Record>, serde_json::Error> {
    serde_json::from_slice::<LogFile>(json).map(|f| f.records)
}

impl Record {
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
}
