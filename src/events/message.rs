//! What a queue message says: the bucket keys of new files, in the four shapes that
//! announce them (S3 event notifications, the same inside SNS, CloudTrail's own SNS
//! notification, EventBridge `Object Created`). Pure: no I/O.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// One announced file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub bucket: String,
    pub key: String,
    /// When S3 says the object was created; `None` when the shape carries no time.
    pub time: Option<DateTime<Utc>>,
}

/// A readable message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Notice {
    pub files: Vec<Announced>,
    /// Keys of events other than a creation (`ObjectRemoved`, restores): never acted on.
    pub other_events: usize,
    /// `s3:TestEvent`, sent once when a notification is configured.
    pub test: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable message body: {0}")]
pub struct Unreadable(pub &'static str);

pub fn parse(body: &str) -> Result<Notice, Unreadable> {
    let v: Value = serde_json::from_str(body).map_err(|_| Unreadable("not JSON"))?;
    parse_value(&v, true)
}

fn parse_value(v: &Value, may_be_envelope: bool) -> Result<Notice, Unreadable> {
    let obj = v.as_object().ok_or(Unreadable("not a JSON object"))?;
    if may_be_envelope && obj.get("Type").and_then(Value::as_str) == Some("Notification") {
        let inner = obj
            .get("Message")
            .and_then(Value::as_str)
            .ok_or(Unreadable("SNS notification without a Message"))?;
        let inner: Value = serde_json::from_str(inner).map_err(|_| Unreadable("SNS Message is not JSON"))?;
        // An envelope inside an envelope is not something SNS sends.
        return parse_value(&inner, false);
    }
    if obj.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notice {
            test: true,
            ..Notice::default()
        });
    }
    if let Some(records) = obj.get("Records") {
        return s3_records(records);
    }
    if let Some(bucket) = obj.get("s3Bucket") {
        return cloudtrail(bucket, obj.get("s3ObjectKey"));
    }
    if obj.get("detail-type").is_some() && obj.get("detail").is_some() {
        return eventbridge(obj);
    }
    Err(Unreadable("not an S3, SNS, CloudTrail or EventBridge notification"))
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, p| v.get(p))?.as_str()
}

fn time(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn s3_records(records: &Value) -> Result<Notice, Unreadable> {
    let records = records.as_array().ok_or(Unreadable("Records is not an array"))?;
    let mut notice = Notice::default();
    for r in records {
        let bucket = text(r, &["s3", "bucket", "name"]).ok_or(Unreadable("a record without s3.bucket.name"))?;
        let key = text(r, &["s3", "object", "key"]).ok_or(Unreadable("a record without s3.object.key"))?;
        let name = text(r, &["eventName"]).unwrap_or_default();
        if !name.starts_with("ObjectCreated:") {
            notice.other_events += 1;
            continue;
        }
        notice.files.push(Announced {
            bucket: bucket.to_string(),
            key: form_decode(key).ok_or(Unreadable("an object key that is not form-encoded UTF-8"))?,
            time: time(text(r, &["eventTime"])),
        });
    }
    Ok(notice)
}

fn cloudtrail(bucket: &Value, keys: Option<&Value>) -> Result<Notice, Unreadable> {
    let bucket = bucket.as_str().ok_or(Unreadable("s3Bucket is not a string"))?;
    let keys = keys
        .and_then(Value::as_array)
        .ok_or(Unreadable("s3ObjectKey is not an array"))?;
    let files = keys
        .iter()
        .map(|k| {
            k.as_str().map(|key| Announced {
                bucket: bucket.to_string(),
                key: key.to_string(),
                time: None,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or(Unreadable("s3ObjectKey holds a non-string"))?;
    Ok(Notice {
        files,
        ..Notice::default()
    })
}

fn eventbridge(obj: &serde_json::Map<String, Value>) -> Result<Notice, Unreadable> {
    let v = Value::Object(obj.clone());
    let bucket =
        text(&v, &["detail", "bucket", "name"]).ok_or(Unreadable("EventBridge event without detail.bucket.name"))?;
    let key =
        text(&v, &["detail", "object", "key"]).ok_or(Unreadable("EventBridge event without detail.object.key"))?;
    if text(&v, &["detail-type"]) != Some("Object Created") {
        return Ok(Notice {
            other_events: 1,
            ..Notice::default()
        });
    }
    // EventBridge sends the key as it is, not form-encoded.
    Ok(Notice {
        files: vec![Announced {
            bucket: bucket.to_string(),
            key: key.to_string(),
            time: time(text(&v, &["time"])),
        }],
        ..Notice::default()
    })
}

/// `application/x-www-form-urlencoded` as S3 writes keys into notifications: `+` is a
/// space, `%xx` a byte. `None` for a broken escape or bytes that are not UTF-8.
pub fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/07/111122223333_CloudTrail_us-east-1_20261207T1205Z_abc.json.gz";

    fn s3_event(name: &str, key: &str) -> String {
        serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": name,
            "eventTime": "2026-12-07T12:05:30.123Z",
            "s3": {"bucket": {"name": "trail-bucket"}, "object": {"key": key, "size": 10}}
        }]})
        .to_string()
    }

    fn sns(inner: &str) -> String {
        serde_json::json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": inner}).to_string()
    }

    fn one(n: &Notice) -> (&str, &str) {
        assert_eq!(n.files.len(), 1, "{n:?}");
        (n.files[0].bucket.as_str(), n.files[0].key.as_str())
    }

    #[test]
    fn s3_notifications_raw_and_in_sns_are_form_decoded() {
        let body = s3_event("ObjectCreated:Put", "p+q/AWSLogs/a%2Bb%C3%A9.json.gz");
        for b in [body.clone(), sns(&body)] {
            let n = parse(&b).unwrap();
            assert_eq!(one(&n), ("trail-bucket", "p q/AWSLogs/a+bé.json.gz"));
            assert_eq!(n.files[0].time.map(|t| t.timestamp_millis()), Some(1_796_645_130_123));
        }
    }

    #[test]
    fn removals_are_other_events_and_test_events_are_flagged() {
        let n = parse(&s3_event("ObjectRemoved:Delete", KEY)).unwrap();
        assert!(n.files.is_empty());
        assert_eq!(n.other_events, 1);
        let t = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-07T12:00:00Z","Bucket":"b","RequestId":"r","HostId":"h"}"#;
        assert!(parse(t).unwrap().test);
        assert!(parse(&sns(t)).unwrap().test);
    }

    #[test]
    fn cloudtrail_notifications_raw_and_in_sns_are_taken_as_sent() {
        let body = serde_json::json!({"s3Bucket": "trail-bucket", "s3ObjectKey": [KEY, "k+2"]}).to_string();
        for b in [body.clone(), sns(&body)] {
            let n = parse(&b).unwrap();
            let keys: Vec<&str> = n.files.iter().map(|f| f.key.as_str()).collect();
            assert_eq!(keys, [KEY, "k+2"]);
            assert!(n.files.iter().all(|f| f.bucket == "trail-bucket" && f.time.is_none()));
        }
    }

    #[test]
    fn eventbridge_object_created_keys_are_not_decoded() {
        let ev = |t: &str| {
            serde_json::json!({"version": "0", "detail-type": t, "source": "aws.s3", "time": "2026-12-07T12:05:31Z",
                "detail": {"bucket": {"name": "trail-bucket"}, "object": {"key": "a+b%20c"}}})
            .to_string()
        };
        let n = parse(&ev("Object Created")).unwrap();
        assert_eq!(one(&n), ("trail-bucket", "a+b%20c"));
        let n = parse(&ev("Object Deleted")).unwrap();
        assert!(n.files.is_empty());
        assert_eq!(n.other_events, 1);
    }

    #[test]
    fn garbage_is_unreadable() {
        for b in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"Records": 3}"#,
            r#"{"Records": [{"eventName": "ObjectCreated:Put"}]}"#,
            r#"{"Type": "Notification", "Message": "{"}"#,
            r#"{"s3Bucket": "b", "s3ObjectKey": "k"}"#,
            &s3_event("ObjectCreated:Put", "bad%zz"),
            &s3_event("ObjectCreated:Put", "bad%ff"),
        ] {
            assert!(parse(b).is_err(), "{b}");
        }
    }
}
