//! The drain's handling of the queue itself, over an in-memory queue that keeps SQS's
//! visibility rules: what a signal does to a receive the queue has already answered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use trailvault::events::{CopyFile, CopyOutcome, DrainJob, EventSource};
use trailvault::queue::{Message, Queue, QueueError};
use trailvault::storage::memory::{MemoryBlobStore, MemorySource};
use trailvault::storage::{BlobInfo, ErrorKind, SourceObject, StorageError};

/// SQS's visibility in miniature: a received message is hidden until deleted or handed back.
#[derive(Default)]
struct SlowQueue {
    visible: Mutex<Vec<Message>>,
    hidden: Mutex<Vec<Message>>,
    /// How long the queue takes to answer a receive; it hides the messages first.
    answer_after: Duration,
}

#[async_trait]
impl Queue for SlowQueue {
    async fn receive(&self, max: u8, _wait: Duration) -> Result<Vec<Message>, QueueError> {
        let batch: Vec<Message> = {
            let mut visible = self.visible.lock().unwrap();
            let n = visible.len().min(max as usize);
            visible.drain(..n).collect()
        };
        self.hidden.lock().unwrap().extend(batch.iter().cloned());
        tokio::time::sleep(self.answer_after).await;
        Ok(batch)
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.hidden.lock().unwrap().retain(|m| m.receipt != receipt);
        Ok(())
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        if visibility.is_zero() {
            let mut hidden = self.hidden.lock().unwrap();
            if let Some(i) = hidden.iter().position(|m| m.receipt == receipt) {
                let m = hidden.remove(i);
                self.visible.lock().unwrap().push(m);
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

/// Nothing may be copied in these tests: a call is a failure the test sees.
struct NoCopy;

#[async_trait]
impl CopyFile for NoCopy {
    async fn copy(&self, _: &EventSource, o: &SourceObject, _: Option<&BlobInfo>) -> Result<CopyOutcome, StorageError> {
        Err(StorageError::new(ErrorKind::Other, "copy", &o.key, "no copy expected"))
    }
}

fn drain(queue: Arc<SlowQueue>) -> DrainJob {
    DrainJob {
        run_id: "drain-test".into(),
        sources: vec![EventSource {
            name: "m".into(),
            prefix: String::new(),
            source: Arc::new(MemorySource::new("b")),
            queue,
        }],
        archive: Arc::new(MemoryBlobStore::new()).into(),
        state: Arc::new(MemoryBlobStore::new()).into(),
        copier: Arc::new(NoCopy),
        wait: Duration::from_secs(1),
        deadline: None,
        until_empty: true,
        files_in_flight: 2,
        default_visibility: Duration::from_secs(30),
        cancel: Default::default(),
    }
}

fn messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| Message {
            id: format!("id-{i}"),
            receipt: format!("receipt-{i}"),
            body: "{}".into(),
            sent: None,
        })
        .collect()
}

#[tokio::test]
async fn a_receive_answered_as_the_signal_comes_hands_its_messages_back() {
    let queue = Arc::new(SlowQueue {
        visible: Mutex::new(messages(3)),
        answer_after: Duration::from_millis(300),
        ..SlowQueue::default()
    });
    let job = drain(queue.clone());
    let cancel = job.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancel.cancel();
    });
    let report = job.run().await;
    assert_eq!(report.stopped, Some("signal"));
    assert_eq!(
        report.sources[0].messages, 0,
        "nothing received after the signal is worked on"
    );
    assert!(
        queue.hidden.lock().unwrap().is_empty(),
        "messages left hidden after the drain stopped"
    );
    assert_eq!(queue.visible.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_receive_that_never_answers_does_not_hold_a_signalled_drain() {
    let queue = Arc::new(SlowQueue {
        visible: Mutex::new(messages(1)),
        answer_after: Duration::from_secs(3600),
        ..SlowQueue::default()
    });
    let job = drain(queue.clone());
    let cancel = job.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancel.cancel();
    });
    let report = tokio::time::timeout(Duration::from_secs(30), job.run())
        .await
        .expect("the drain waited on a receive after the signal");
    assert_eq!(report.stopped, Some("signal"));
}
