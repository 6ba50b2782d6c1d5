//! A network link between the two parties, as a cost: its round-trip time and its bandwidth.
//!
//! The reference links of the design (`lan`: 1 ms RTT, 1 Gbit/s; `wan`: 40 ms RTT, 400 Mbit/s),
//! `loopback` (no delay, no cap) and free values `rtt=10ms,bw=400mbit` parse from a string
//! ([`Link::from_str`](std::str::FromStr)); `ciphergpt relay` emulates one between two processes,
//! and [`Link::estimate_seconds`] states what it should cost. The reference links' figures and
//! the formula live in the compiler ([`ciphergpt_compiler::plan::link`]), which the cost model's
//! `inspect --summary` uses too; this module uses them.
//!
//! The cost model: a *flight* is one party's batch of messages that the other must wait for
//! before it can go on; it costs half a round trip (the one-way delay) whatever its size, and
//! its bytes cost their serialisation time, `bytes · 8 / bandwidth`. The channels count flights
//! as *rounds* ([`super::Accounting`]): a party's counter goes up each time its direction changes
//! (a send after a receive, a receive after a send) and on its first operation, so a protocol
//! A→B→A is 2 rounds for either party, and a chain of `r` dependent flights costs `r · RTT/2`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use ciphergpt_compiler::plan::link::{LinkCost, LAN, WAN};

/// A bad link description; the message is one line naming the string and a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("link {given:?}: {what} (give lan, wan, loopback, or rtt=10ms,bw=400mbit with rtt in s/ms/us and bw in bit/kbit/mbit/gbit)")]
pub struct LinkError {
    pub given: String,
    pub what: String,
}

/// A link: its name (`lan`, `wan`, `loopback`, or `custom`), round-trip time and bandwidth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// Round-trip time; each direction delays every byte by half of it.
    pub rtt: Duration,
    /// Bits per second in each direction (the two are independent); `None`: no cap.
    pub bandwidth: Option<u64>,
}

impl Link {
    /// 1 ms RTT, 1 Gbit/s.
    pub fn lan() -> Link {
        Link::named("lan", LAN.rtt, LAN.bandwidth)
    }

    /// 40 ms RTT, 400 Mbit/s.
    pub fn wan() -> Link {
        Link::named("wan", WAN.rtt, WAN.bandwidth)
    }

    /// No delay, no cap.
    pub fn loopback() -> Link {
        Link::named("loopback", Duration::ZERO, None)
    }

    fn named(name: &str, rtt: Duration, bandwidth: Option<u64>) -> Link {
        Link {
            name: name.to_string(),
            rtt,
            bandwidth,
        }
    }

    /// Its round-trip time and bandwidth, as the compiler's cost of a link.
    pub fn cost(&self) -> LinkCost {
        LinkCost {
            rtt: self.rtt,
            bandwidth: self.bandwidth,
        }
    }

    /// The one-way delay every byte takes: half the round trip.
    pub fn one_way(&self) -> Duration {
        self.cost().one_way()
    }

    /// How long `bytes` occupy one direction of the link (zero without a cap).
    pub fn serialisation(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(self.cost().transfer_seconds(bytes))
    }

    /// The model's time for a computation that moves `bytes` over the link in `flights`
    /// flights, computation itself aside: `flights · RTT/2 + bytes · 8 / bandwidth`.
    ///
    /// `flights` is a party's rounds as the channels count them (a direction change or the first
    /// operation, [`super::Accounting`]; for lanes run at once, the most of any lane, as the
    /// session report gives them). `bytes` is what that party sent plus what it received:
    /// in a protocol of dependent flights one direction at a time carries them, so they add up
    /// (a protocol whose two directions overlap can take down to about half the transfer term).
    /// The report's per-instruction rounds count a flight that straddles two instructions in
    /// both, so their sum can exceed the flights that really happened; the estimate is then a
    /// little pessimistic.
    /// The formula is the compiler's ([`LinkCost::estimate_seconds`]), which `inspect --summary`
    /// and the session report apply too.
    pub fn estimate_seconds(&self, bytes: u64, flights: u64) -> f64 {
        self.cost().estimate_seconds(bytes, flights)
    }

    /// The free-value form, `rtt=…,bw=…`, that parses back to the same figures.
    pub fn spec(&self) -> String {
        let rtt = self.rtt.as_micros();
        let rtt = if rtt.is_multiple_of(1000) {
            format!("{}ms", rtt / 1000)
        } else {
            format!("{rtt}us")
        };
        match self.bandwidth {
            Some(bw) => format!("rtt={rtt},bw={}", bits(bw)),
            None => format!("rtt={rtt}"),
        }
    }
}

/// A bandwidth in the largest unit that writes it exactly.
fn bits(bw: u64) -> String {
    for (unit, scale) in [
        ("gbit", 1_000_000_000),
        ("mbit", 1_000_000),
        ("kbit", 1_000),
    ] {
        if bw.is_multiple_of(scale) {
            return format!("{}{unit}", bw / scale);
        }
    }
    format!("{bw}bit")
}

impl fmt::Display for Link {
    /// `lan (rtt=1ms,bw=1gbit)`; a custom link is its free values alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name.as_str() {
            "custom" => f.write_str(&self.spec()),
            "loopback" => f.write_str("loopback (no delay, no cap)"),
            name => write!(f, "{name} ({})", self.spec()),
        }
    }
}

impl FromStr for Link {
    type Err = LinkError;

    fn from_str(s: &str) -> Result<Link, LinkError> {
        let err = |what: String| LinkError {
            given: s.to_string(),
            what,
        };
        match s.trim() {
            "lan" => return Ok(Link::lan()),
            "wan" => return Ok(Link::wan()),
            "loopback" => return Ok(Link::loopback()),
            _ => {}
        }
        let mut link = Link::named("custom", Duration::ZERO, None);
        let (mut rtt, mut bw) = (false, false);
        for part in s.split(',').map(str::trim) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(err(format!("{part:?} is neither a profile nor key=value")));
            };
            match key.trim() {
                "rtt" if !rtt => {
                    rtt = true;
                    link.rtt = parse_rtt(value.trim()).map_err(err)?;
                }
                "bw" if !bw => {
                    bw = true;
                    link.bandwidth = Some(parse_bandwidth(value.trim()).map_err(err)?);
                }
                "rtt" | "bw" => return Err(err(format!("{key} given twice"))),
                other => return Err(err(format!("unknown key {other:?}"))),
            }
        }
        Ok(link)
    }
}

/// A non-negative finite number followed by one of `units` (name, scale).
fn number_with_unit(value: &str, units: &[(&str, f64)], what: &str) -> Result<f64, String> {
    let Some(&(unit, scale)) = units
        .iter()
        .filter(|(u, _)| value.ends_with(u))
        .max_by_key(|(u, _)| u.len())
    else {
        let names: Vec<&str> = units.iter().map(|(u, _)| *u).collect();
        return Err(format!(
            "{what} {value:?} needs a unit ({})",
            names.join(", ")
        ));
    };
    let number = &value[..value.len() - unit.len()];
    match number.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x * scale),
        _ => Err(format!(
            "{what} {value:?}: {number:?} is not a non-negative number"
        )),
    }
}

fn parse_rtt(value: &str) -> Result<Duration, String> {
    let secs = number_with_unit(value, &[("s", 1.0), ("ms", 1e-3), ("us", 1e-6)], "rtt")?;
    if secs > 3600.0 {
        return Err(format!("rtt {value:?} is over an hour"));
    }
    Ok(Duration::from_micros((secs * 1e6).round() as u64))
}

fn parse_bandwidth(value: &str) -> Result<u64, String> {
    let units = [("bit", 1.0), ("kbit", 1e3), ("mbit", 1e6), ("gbit", 1e9)];
    let bps = number_with_unit(value, &units, "bw")?.round();
    if !(1.0..=1e15).contains(&bps) {
        return Err(format!("bw {value:?} is outside 1 bit/s ..= 1 Pbit/s"));
    }
    Ok(bps as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Link, LinkError> {
        s.parse()
    }

    #[test]
    fn profiles_are_the_designs_reference_links() {
        let lan = parse("lan").unwrap();
        assert_eq!(lan.rtt, Duration::from_millis(1));
        assert_eq!(lan.bandwidth, Some(1_000_000_000));
        let wan = parse("wan").unwrap();
        assert_eq!(wan.rtt, Duration::from_millis(40));
        assert_eq!(wan.bandwidth, Some(400_000_000));
        assert_eq!(wan.one_way(), Duration::from_millis(20));
        let lo = parse("loopback").unwrap();
        assert_eq!((lo.rtt, lo.bandwidth), (Duration::ZERO, None));
        assert_eq!(lan.to_string(), "lan (rtt=1ms,bw=1gbit)");
        assert_eq!(wan.to_string(), "wan (rtt=40ms,bw=400mbit)");
        assert_eq!(lo.to_string(), "loopback (no delay, no cap)");
    }

    #[test]
    fn free_values_parse_with_their_units_and_print_back() {
        let l = parse("rtt=10ms,bw=400mbit").unwrap();
        assert_eq!(l.name, "custom");
        assert_eq!(l.rtt, Duration::from_millis(10));
        assert_eq!(l.bandwidth, Some(400_000_000));
        assert_eq!(l.to_string(), "rtt=10ms,bw=400mbit");
        assert_eq!(parse(&l.to_string()).unwrap(), l);
        let l = parse("bw=1.5kbit, rtt=250us").unwrap();
        assert_eq!(l.rtt, Duration::from_micros(250));
        assert_eq!(l.bandwidth, Some(1_500));
        assert_eq!(l.to_string(), "rtt=250us,bw=1500bit");
        assert_eq!(parse(&l.to_string()).unwrap(), l);
        let l = parse("rtt=0.5s").unwrap();
        assert_eq!((l.rtt, l.bandwidth), (Duration::from_millis(500), None));
        assert_eq!(parse("bw=2gbit").unwrap().rtt, Duration::ZERO);
        for p in ["lan", "wan"] {
            let l = parse(p).unwrap();
            let again = parse(&l.spec()).unwrap();
            assert_eq!((again.rtt, again.bandwidth), (l.rtt, l.bandwidth));
        }
    }

    #[test]
    fn bad_strings_give_one_line_errors_naming_the_string() {
        for (bad, needle) in [
            ("", "neither a profile nor key=value"),
            ("lna", "neither a profile nor key=value"),
            ("rtt=10", "needs a unit"),
            ("rtt=10ms,bw=400", "needs a unit"),
            ("rtt=-1ms", "not a non-negative number"),
            ("rtt=fastms", "not a non-negative number"),
            ("bw=0kbit", "outside"),
            ("rtt=2h", "needs a unit"),
            ("rtt=1ms,rtt=2ms", "rtt given twice"),
            ("delay=1ms", "unknown key"),
            ("rtt=NaNms", "not a non-negative number"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad:?}: {e}");
            assert!(e.starts_with(&format!("link {bad:?}: ")), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn the_estimate_is_half_a_round_trip_per_flight_plus_the_transfer() {
        let wan = Link::wan();
        // 10 flights of 20 ms, and 1 MB at 400 Mbit/s = 20 ms.
        assert!((wan.estimate_seconds(1_000_000, 10) - 0.22).abs() < 1e-12);
        let lan = Link::lan();
        assert!((lan.estimate_seconds(125_000_000, 0) - 1.0).abs() < 1e-12);
        assert!((lan.estimate_seconds(0, 4) - 0.002).abs() < 1e-12);
        assert_eq!(Link::loopback().estimate_seconds(1 << 30, 1000), 0.0);
    }
}
