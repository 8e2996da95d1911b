use futures::StreamExt;

use crate::{Bus, BusError, Notification, decode, encode};

/// A NATS connection (the client reconnects by itself when the server comes back).
#[derive(Clone, Debug)]
pub struct NatsBus {
    client: async_nats::Client,
}

impl NatsBus {
    pub async fn connect(url: &str) -> Result<NatsBus, BusError> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| BusError::Connect {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(NatsBus { client })
    }

    /// Whether the connection is up right now (while it is not, subscribers hear nothing
    /// and must poll).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Notifications on `subject` (wildcards allowed), in arrival order.
    pub async fn subscribe(
        &self,
        subject: &str,
    ) -> Result<impl futures::Stream<Item = Notification> + use<>, BusError> {
        let sub = self
            .client
            .subscribe(subject.to_owned())
            .await
            .map_err(|e| BusError::Subscribe {
                subject: subject.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(sub.filter_map(|m| async move { decode(&m.payload) }))
    }
}

impl Bus for NatsBus {
    async fn publish(&self, subject: &str, note: &Notification) -> Result<(), BusError> {
        self.client
            .publish(subject.to_owned(), encode(note))
            .await
            .map_err(|e| BusError::Publish(e.to_string()))
    }

    async fn flush(&self) -> Result<(), BusError> {
        self.client
            .flush()
            .await
            .map_err(|e| BusError::Publish(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notifications_round_trip_through_a_real_nats() {
        let nats = zeitwork_services::Nats::throwaway().await.unwrap();
        let bus = NatsBus::connect(&nats.url()).await.unwrap();
        let mut sub = Box::pin(bus.subscribe("zw.v1.>").await.unwrap());
        let note = Notification {
            kind: "route_created".into(),
            id: "r1".into(),
            seq: 7,
        };
        bus.publish("zw.v1.routes", &note).await.unwrap();
        bus.flush().await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
            .await
            .unwrap();
        assert_eq!(got, Some(note));
    }
}
