//! An in-process bus: every published notification with its subject, in order. For unit
//! tests of publishers where a NATS server adds nothing (the NATS path has its own test).

use std::sync::{Arc, Mutex, PoisonError};

use crate::{Bus, BusError, Notification};

#[derive(Clone, Debug, Default)]
pub struct MemoryBus {
    sent: Arc<Mutex<Vec<(String, Notification)>>>,
}

impl MemoryBus {
    /// Everything published so far.
    pub fn sent(&self) -> Vec<(String, Notification)> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Bus for MemoryBus {
    async fn publish(&self, subject: &str, note: &Notification) -> Result<(), BusError> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((subject.to_owned(), note.clone()));
        Ok(())
    }

    async fn flush(&self) -> Result<(), BusError> {
        Ok(())
    }
}
