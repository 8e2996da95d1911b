//! A MaxMind-format database (`.mmdb`: GeoLite2/GeoIP2 Country or City, or one of your
//! own) as the second way to find a client's region, after the regions' client networks
//! and before the default region. A record names its region either itself, in a
//! `zeitwork_region` string (a database built for the platform), or through its country's
//! or continent's code, mapped to a region by `--geoip-region CODE=REGION` (country codes
//! first: `DE=eu-1`, then continent codes: `EU=eu-1`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

/// An open database and the code → region map.
pub struct Geo {
    reader: maxminddb::Reader<Vec<u8>>,
    regions: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    zeitwork_region: Option<&'a str>,
    #[serde(borrow, default)]
    country: Option<Code<'a>>,
    #[serde(borrow, default)]
    continent: Option<Code<'a>>,
}

#[derive(Deserialize)]
struct Code<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

impl Geo {
    /// Reads the database at `path` whole (it is swapped by restarting the server);
    /// `regions` maps country and continent codes to region names.
    pub fn open(path: &Path, regions: HashMap<String, String>) -> Result<Geo, String> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| e.to_string())?;
        Ok(Geo { reader, regions })
    }

    /// The region the database places `client` in, if any. A lookup error (an IPv6
    /// client in an IPv4-only database) places it nowhere.
    pub fn region_of(&self, client: IpAddr) -> Option<String> {
        let found = self.reader.lookup(client).ok()?;
        let record: Record<'_> = found.decode().ok()??;
        if let Some(region) = record.zeitwork_region {
            return Some(region.to_owned());
        }
        let country = record.country.and_then(|c| c.iso_code);
        let continent = record.continent.and_then(|c| c.code);
        [country, continent]
            .into_iter()
            .flatten()
            .find_map(|code| self.regions.get(code).cloned())
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A minimal MaxMind DB writer (IPv4, 32-bit records) for tests: no writer is
    //! published for Rust, and the format is small (maxmind.github.io/MaxMind-DB).

    use std::net::Ipv4Addr;

    /// A value in the data section.
    pub enum Value {
        Str(&'static str),
        Map(Vec<(&'static str, Value)>),
        U16(u16),
        U32(u32),
        U64(u64),
        Array(Vec<Value>),
    }

    fn encode(value: &Value, out: &mut Vec<u8>) {
        let control = |out: &mut Vec<u8>, kind: u8, size: usize| {
            assert!(size < 29, "tests write small values");
            let size = size as u8;
            if kind <= 7 {
                out.push((kind << 5) | size);
            } else {
                out.push(size);
                out.push(kind - 7);
            }
        };
        let uint = |out: &mut Vec<u8>, kind: u8, n: u64| {
            let bytes = n.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            control(out, kind, 8 - skip);
            out.extend_from_slice(&bytes[skip..]);
        };
        match value {
            Value::Str(s) => {
                control(out, 2, s.len());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Map(entries) => {
                control(out, 7, entries.len());
                for (key, value) in entries {
                    encode(&Value::Str(key), out);
                    encode(value, out);
                }
            }
            Value::U16(n) => uint(out, 5, u64::from(*n)),
            Value::U32(n) => uint(out, 6, u64::from(*n)),
            Value::U64(n) => uint(out, 9, *n),
            Value::Array(items) => {
                control(out, 11, items.len());
                for item in items {
                    encode(item, out);
                }
            }
        }
    }

    #[derive(Clone, Copy)]
    enum Slot {
        Empty,
        Node(usize),
        Data(usize),
    }

    /// An IPv4 database holding `networks` (non-overlapping), each with its record.
    pub fn database(networks: &[(Ipv4Addr, u8, Value)]) -> Vec<u8> {
        let mut nodes: Vec<[Slot; 2]> = vec![[Slot::Empty; 2]];
        let mut data = Vec::new();
        for (address, prefix, value) in networks {
            let offset = data.len();
            encode(value, &mut data);
            let bits = u32::from(*address);
            let mut node = 0;
            for depth in 0..*prefix {
                let bit = ((bits >> (31 - depth)) & 1) as usize;
                if depth + 1 == *prefix {
                    nodes[node][bit] = Slot::Data(offset);
                } else {
                    node = match nodes[node][bit] {
                        Slot::Node(next) => next,
                        _ => {
                            nodes.push([Slot::Empty; 2]);
                            let next = nodes.len() - 1;
                            nodes[node][bit] = Slot::Node(next);
                            next
                        }
                    };
                }
            }
        }
        let count = nodes.len();
        let mut out = Vec::new();
        for node in &nodes {
            for slot in node {
                let value = match *slot {
                    Slot::Empty => count,
                    Slot::Node(n) => n,
                    Slot::Data(offset) => count + 16 + offset,
                };
                out.extend_from_slice(&(value as u32).to_be_bytes());
            }
        }
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let metadata = Value::Map(vec![
            ("node_count", Value::U32(count as u32)),
            ("record_size", Value::U16(32)),
            ("ip_version", Value::U16(4)),
            ("database_type", Value::Str("Zeitwork-Test")),
            ("languages", Value::Array(vec![Value::Str("en")])),
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(1_700_000_000)),
            ("description", Value::Map(vec![("en", Value::Str("test"))])),
        ]);
        encode(&metadata, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Value, database};
    use super::*;

    fn geo() -> (tempfile::TempDir, Geo) {
        let country = |code: &'static str, continent: &'static str| {
            Value::Map(vec![
                (
                    "continent",
                    Value::Map(vec![("code", Value::Str(continent))]),
                ),
                ("country", Value::Map(vec![("iso_code", Value::Str(code))])),
            ])
        };
        let bytes = database(&[
            ("81.0.0.0".parse().unwrap(), 8, country("DE", "EU")),
            ("82.0.0.0".parse().unwrap(), 8, country("FR", "EU")),
            ("8.0.0.0".parse().unwrap(), 8, country("US", "NA")),
            ("9.0.0.0".parse().unwrap(), 8, country("BR", "SA")),
            (
                "10.9.0.0".parse().unwrap(),
                16,
                Value::Map(vec![("zeitwork_region", Value::Str("ap-1"))]),
            ),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.mmdb");
        std::fs::write(&path, bytes).unwrap();
        let regions = [("DE", "eu-2"), ("EU", "eu-1"), ("US", "us-1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let geo = Geo::open(&path, regions).unwrap();
        (dir, geo)
    }

    #[test]
    fn a_country_code_wins_over_its_continent_and_a_record_may_name_its_region() {
        let (_dir, geo) = geo();
        let at = |ip: &str| geo.region_of(ip.parse().unwrap());
        assert_eq!(at("81.2.3.4").as_deref(), Some("eu-2"), "DE, by country");
        assert_eq!(at("82.2.3.4").as_deref(), Some("eu-1"), "FR, by continent");
        assert_eq!(at("8.8.8.8").as_deref(), Some("us-1"));
        assert_eq!(at("9.9.9.9"), None, "BR/SA: no mapping");
        assert_eq!(
            at("10.9.1.1").as_deref(),
            Some("ap-1"),
            "named by the record"
        );
        assert_eq!(at("192.0.2.1"), None, "not in the database");
        assert_eq!(at("2001:db8::1"), None, "IPv6 in an IPv4 database");
    }

    #[test]
    fn the_database_places_clients_no_client_network_holds() {
        use crate::regions::{Family, Region, Table};
        let (_dir, geo) = geo();
        let region = |name: &str, address: &str, networks: &[&str]| Region {
            name: name.into(),
            addresses: vec![address.parse().unwrap()],
            client_networks: networks.iter().map(|n| n.parse().unwrap()).collect(),
        };
        let table = Table::new(
            vec![
                region("eu-2", "203.0.113.2", &["81.1.0.0/16"]),
                region("us-1", "198.51.100.1", &[]),
                region("eu-1", "203.0.113.1", &[]),
            ],
            Some("us-1".into()),
            Vec::new(),
        );
        let up = table.addresses().collect();
        let at = |ip: &str| {
            let pick = table.pick(ip.parse().unwrap(), Family::V4, &up, Some(&geo));
            pick.region
        };
        assert_eq!(
            at("82.1.1.1").as_deref(),
            Some("eu-1"),
            "FR by the database"
        );
        assert_eq!(
            at("81.1.1.1").as_deref(),
            Some("eu-2"),
            "a listed network first"
        );
        assert_eq!(
            at("9.9.9.9").as_deref(),
            Some("us-1"),
            "unmapped: the default"
        );
        assert_eq!(
            at("10.9.0.1").as_deref(),
            Some("us-1"),
            "ap-1 is no region here"
        );
    }

    #[test]
    fn a_file_that_is_no_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.mmdb");
        std::fs::write(&path, b"not a database").unwrap();
        assert!(Geo::open(&path, HashMap::new()).is_err());
    }
}
