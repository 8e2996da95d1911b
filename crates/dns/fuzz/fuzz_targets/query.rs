//! The query path on arbitrary bytes, as the server meets them: hickory decodes the
//! message (what it cannot decode gets FORMERR before our code), then the zone's handler
//! answers. It must never panic, and every answer must be a well-formed response to the
//! query: same id, QR set, an rcode the handler gives, at most MAX_ANSWER records, each
//! owned by the question's name.

#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Message, MessageType, ResponseCode};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use hickory_server::proto::rr::Record;
use libfuzzer_sys::fuzz_target;
use zeitwork_dns::handler::Name;
use zeitwork_dns::regions::{MAX_ANSWER, Region};
use zeitwork_dns::{Current, Handler, Table, Zone};

/// Keeps the bytes a handler sends.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::new();
        let info = response
            .destructive_emit(&mut BinEncoder::new(&mut bytes))
            .expect("a response always encodes");
        *self.0.lock().unwrap() = bytes;
        Ok(info)
    }
}

fn handler() -> &'static Handler {
    static HANDLER: OnceLock<Handler> = OnceLock::new();
    HANDLER.get_or_init(|| {
        let region = |name: &str, addresses: &[&str], networks: &[&str]| Region {
            name: name.into(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            client_networks: networks.iter().map(|n| n.parse().unwrap()).collect(),
        };
        let table = Table::new(
            vec![
                region("eu-1", &["203.0.113.1", "2001:db8::1"], &["10.1.0.0/16", "2001:db8:1::/48"]),
                region("us-1", &["198.51.100.1", "198.51.100.2"], &["10.0.0.0/8"]),
            ],
            Some("us-1".into()),
            Vec::new(),
        );
        let current = Arc::new(Current::default());
        current.up.store(Arc::new(table.addresses().collect()));
        current.table.store(Arc::new(table));
        let zone = Zone {
            origin: Name::from_ascii("zeitwork.example.").unwrap(),
            nameservers: vec![Name::from_ascii("ns1.zeitwork.example.").unwrap()],
            fixed: vec![(
                Name::from_ascii("ns1.zeitwork.example.").unwrap(),
                IpAddr::from([192, 0, 2, 53]),
            )],
            ttl: 20,
        };
        Handler::new(zone, current)
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let src = SocketAddr::new(IpAddr::from([10, 1, 2, 3]), 5353);
    let Ok(request) = Request::from_bytes(data.to_vec(), src, Protocol::Udp) else {
        return; // hickory's server answers FORMERR itself
    };
    if request.metadata.message_type == MessageType::Response {
        return; // the server drops responses before the handler (no reflection)
    }
    let capture = Capture::default();
    runtime().block_on(handler().handle_request::<_, TokioTime>(&request, capture.clone()));
    let bytes = capture.0.lock().unwrap().clone();
    let answer = Message::from_vec(&bytes).expect("what the handler sends decodes");
    assert_eq!(answer.metadata.id, request.metadata.id);
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    let code = answer.metadata.response_code;
    assert!(
        [
            ResponseCode::NoError,
            ResponseCode::FormErr,
            ResponseCode::Refused,
            ResponseCode::NotImp,
            ResponseCode::BADVERS,
            // BADVERS's number (16) read back: RFC 6891 and RFC 8945 share it.
            ResponseCode::BADSIG,
        ]
        .contains(&code),
        "{code:?}"
    );
    assert!(answer.answers.len() <= MAX_ANSWER);
    if let [query] = request.queries.queries() {
        let asked = Name::from(query.name());
        for record in &answer.answers {
            assert!(record.name.eq_case(&asked) || record.name == asked, "{record:?} for {asked}");
        }
    }
});
