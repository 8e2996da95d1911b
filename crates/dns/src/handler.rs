//! The query path: one question about a name in the zone, answered from the current
//! region table and health (no I/O, no locks: two snapshot loads per query).
//!
//! - A/AAAA (and ANY, answered as A, RFC 8482) for the apex or any name under it: the
//!   addresses [`Table::pick`] chooses for the client, the EDNS Client Subnet's address
//!   when the query carries one (echoed back with its scope), else the resolver's.
//! - SOA and NS at the apex; any other type: no data, with the SOA (negative caching).
//! - A name outside the zone or a class other than IN: REFUSED; an opcode other than
//!   QUERY: NOTIMP; not exactly one question: FORMERR; an EDNS version above 0: BADVERS.
//!   Bytes that are no DNS message get FORMERR from hickory's server before they get here.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use arc_swap::ArcSwap;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Metadata, OpCode, ResponseCode};
pub use hickory_server::proto::rr::Name;
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_server::proto::rr::{DNSClass, LowerName, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::{BinDecoder, BinEncodable, BinEncoder};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};

use crate::geo::Geo;
use crate::regions::{Family, Table};

/// The zone served and how long answers may be cached.
#[derive(Debug, Clone)]
pub struct Zone {
    /// The base domain, fully qualified (`zeitwork.example.`).
    pub origin: Name,
    /// The zone's name servers, for NS and the SOA's MNAME.
    pub nameservers: Vec<Name>,
    /// Names in the zone answered with fixed addresses, not by region: the zone's own name
    /// servers when they are inside it (a resolver trusts these answers over the parent's
    /// glue, so they must never be the edges').
    pub fixed: Vec<(Name, IpAddr)>,
    /// Seconds answers may be cached (short: withdrawal must reach clients quickly).
    pub ttl: u32,
}

/// What the query path reads and the loader and health checker replace.
#[derive(Debug, Default)]
pub struct Current {
    pub table: ArcSwap<Table>,
    /// Addresses whose last health checks passed.
    pub up: ArcSwap<HashSet<IpAddr>>,
    /// The SOA serial: bumped whenever the table changes.
    pub serial: AtomicU32,
}

/// hickory's [`RequestHandler`] for the zone.
pub struct Handler {
    zone: Zone,
    origin: LowerName,
    current: Arc<Current>,
    geo: Option<Geo>,
}

impl Handler {
    pub fn new(zone: Zone, current: Arc<Current>) -> Handler {
        let origin = LowerName::new(&zone.origin);
        Handler {
            zone,
            origin,
            current,
            geo: None,
        }
    }

    /// The same handler placing clients no client network holds by `geo`.
    pub fn with_geo(mut self, geo: Option<Geo>) -> Handler {
        self.geo = geo;
        self
    }

    fn soa(&self) -> Record {
        let mname = self
            .zone
            .nameservers
            .first()
            .cloned()
            .unwrap_or_else(|| self.zone.origin.clone());
        let rname = Name::from_ascii("hostmaster")
            .and_then(|n| n.append_domain(&self.zone.origin))
            .unwrap_or_else(|_| self.zone.origin.clone());
        let ttl = self.zone.ttl;
        let serial = self.current.serial.load(Ordering::Relaxed);
        let soa = SOA::new(mname, rname, serial, 3600, 600, 86_400, ttl);
        Record::from_rdata(self.zone.origin.clone(), ttl, RData::SOA(soa))
    }
}

/// What one query is answered with.
struct Answer {
    code: ResponseCode,
    answers: Vec<Record>,
    /// The SOA in the authority section (no data).
    soa: Vec<Record>,
    /// The Client Subnet option to echo, with its scope.
    subnet: Option<ClientSubnet>,
}

impl Answer {
    fn code(code: ResponseCode) -> Answer {
        Answer {
            code,
            answers: Vec::new(),
            soa: Vec::new(),
            subnet: None,
        }
    }
}

impl Handler {
    fn answer(&self, request: &Request) -> Answer {
        if request.metadata.op_code != OpCode::Query {
            return Answer::code(ResponseCode::NotImp);
        }
        let [query] = request.queries.queries() else {
            return Answer::code(ResponseCode::FormErr);
        };
        if query.query_class() != DNSClass::IN || !self.origin.zone_of(query.name()) {
            return Answer::code(ResponseCode::Refused);
        }
        let subnet = request
            .edns
            .as_ref()
            .and_then(|e| match e.option(EdnsCode::Subnet) {
                Some(EdnsOption::Subnet(s)) => Some(*s),
                _ => None,
            });
        // A source prefix of 0 asks for an answer that does not depend on the client.
        let client = match &subnet {
            Some(s) if s.source_prefix() > 0 => s.addr(),
            _ => request.src().ip(),
        };
        let name = Name::from(query.name());
        let apex = *query.name() == self.origin;
        let ttl = self.zone.ttl;
        let family = match query.query_type() {
            RecordType::A | RecordType::ANY => Some(Family::V4),
            RecordType::AAAA => Some(Family::V6),
            _ => None,
        };
        let mut answer = Answer::code(ResponseCode::NoError);
        let fixed: Vec<IpAddr> = self
            .zone
            .fixed
            .iter()
            .filter(|(owner, _)| LowerName::new(owner) == *query.name())
            .map(|(_, ip)| *ip)
            .collect();
        match family {
            Some(family) => {
                let addresses = if fixed.is_empty() {
                    let (table, up) = (self.current.table.load(), self.current.up.load());
                    table.pick(client, family, &up, self.geo.as_ref()).addresses
                } else {
                    fixed.into_iter().filter(|ip| family.holds(ip)).collect()
                };
                answer.answers = addresses
                    .into_iter()
                    .map(|ip| {
                        let data = match ip {
                            IpAddr::V4(v4) => RData::A(A(v4)),
                            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                        };
                        Record::from_rdata(name.clone(), ttl, data)
                    })
                    .collect();
            }
            None if apex && query.query_type() == RecordType::SOA => {
                answer.answers.push(self.soa());
            }
            None if apex && query.query_type() == RecordType::NS => {
                let servers = self.zone.nameservers.iter().cloned();
                answer.answers = servers
                    .map(|ns| Record::from_rdata(name.clone(), ttl, RData::NS(NS(ns))))
                    .collect();
            }
            None => {}
        }
        if answer.answers.is_empty() {
            answer.soa.push(self.soa());
        }
        // Echoed with scope = source: the answer holds for the subnet asked about, no wider
        // (a more specific client network may lie inside the one that matched).
        answer.subnet =
            subnet.map(|s| ClientSubnet::new(s.addr(), s.source_prefix(), s.source_prefix()));
        answer
    }
}

/// The question an answer repeats, encoded anew: hickory would echo the query's own bytes,
/// whose compression pointers may point past the question (into the query's other
/// sections), making an answer no client can read. One question is written out whole
/// (nothing to compress against); a query with another number of questions gets its FORMERR
/// without any.
fn echoed_question(request: &Request) -> Queries {
    let mut bytes = Vec::new();
    let one = match request.queries.queries() {
        [query] => query.emit(&mut BinEncoder::new(&mut bytes)).is_ok(),
        _ => false,
    };
    if !one {
        bytes.clear();
    }
    let count = usize::from(one);
    Queries::read(&mut BinDecoder::new(&bytes), count).unwrap_or_else(|_| {
        Queries::read(&mut BinDecoder::new(&[]), 0).expect("no question reads from nothing")
    })
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut edns = None;
        let mut answer = match &request.edns {
            Some(asked) if asked.version() > 0 => Answer::code(ResponseCode::BADVERS),
            _ => self.answer(request),
        };
        if let Some(asked) = &request.edns {
            let mut ours = Edns::new();
            ours.set_max_payload(asked.max_payload().max(512));
            ours.set_version(0);
            ours.set_rcode_high(answer.code.high());
            if let Some(subnet) = answer.subnet.take() {
                ours.options_mut().insert(EdnsOption::Subnet(subnet));
            }
            edns = Some(ours);
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = answer.code == ResponseCode::NoError;
        metadata.recursion_available = false;
        metadata.response_code = answer.code;
        metrics::counter!("zeitwork_dns_answers_total", "rcode" => answer.code.to_str())
            .increment(1);
        let echoed = echoed_question(request);
        let response = MessageResponseBuilder::new(&echoed, edns.as_ref()).build(
            metadata,
            answer.answers.iter(),
            std::iter::empty(),
            answer.soa.iter(),
            std::iter::empty(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "a DNS answer could not be sent");
                let mut failed = Metadata::response_from_request(&request.metadata);
                failed.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_server::proto::op::Header {
                    metadata: failed,
                    counts: Default::default(),
                })
            }
        }
    }
}
