//! A network link as a cost: the design's reference links and the one formula that turns bytes
//! and flights into seconds.
//!
//! A *flight* is one party's batch of messages that the other must wait for before it can go on;
//! it costs half a round trip (the one-way delay) whatever its size, and bytes cost their
//! serialisation time, `bytes · 8 / bandwidth`. So a computation that moves `bytes` in `flights`
//! flights takes `flights · RTT/2 + bytes · 8 / bandwidth` of link time, computation aside
//! ([`LinkCost::estimate_seconds`]). The reference links are [`LAN`] (1 ms RTT, 1 Gbit/s) and
//! [`WAN`] (40 ms RTT, 400 Mbit/s), the settings of BOLT, OpenCheetah and Nimbus.
//!
//! `inspect --summary` applies it to the cost model's bytes and rounds, the session report of
//! `generate` to the measured ones, and the runtime's `net::link::Link` (what `ciphergpt relay`
//! emulates) delegates its estimate here: one formula for all three.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A link's round-trip time and bandwidth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkCost {
    /// Round-trip time; each direction delays every byte by half of it.
    pub rtt: Duration,
    /// Bits per second in each direction; `None`: no cap.
    pub bandwidth: Option<u64>,
}

/// 1 ms RTT, 1 Gbit/s.
pub const LAN: LinkCost = LinkCost {
    rtt: Duration::from_millis(1),
    bandwidth: Some(1_000_000_000),
};

/// 40 ms RTT, 400 Mbit/s.
pub const WAN: LinkCost = LinkCost {
    rtt: Duration::from_millis(40),
    bandwidth: Some(400_000_000),
};

impl LinkCost {
    /// The one-way delay every byte takes: half the round trip.
    pub fn one_way(&self) -> Duration {
        self.rtt / 2
    }

    /// How long `bytes` occupy one direction of the link, in seconds (zero without a cap).
    pub fn transfer_seconds(&self, bytes: u64) -> f64 {
        match self.bandwidth {
            Some(bw) => bytes as f64 * 8.0 / bw as f64,
            None => 0.0,
        }
    }

    /// The link time of a computation that moves `bytes` (both directions together) in
    /// `flights` flights, computation aside: `flights · RTT/2 + bytes · 8 / bandwidth`.
    pub fn estimate_seconds(&self, bytes: u64, flights: u64) -> f64 {
        flights as f64 * self.one_way().as_secs_f64() + self.transfer_seconds(bytes)
    }
}

impl fmt::Display for LinkCost {
    /// `RTT 40 ms, 400 Mbit/s` (`no cap` without a bandwidth).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RTT {} ms, ", self.rtt.as_secs_f64() * 1e3)?;
        match self.bandwidth {
            Some(bw) if bw % 1_000_000_000 == 0 => write!(f, "{} Gbit/s", bw / 1_000_000_000),
            Some(bw) => write!(f, "{} Mbit/s", bw as f64 / 1e6),
            None => f.write_str("no cap"),
        }
    }
}

/// The estimated link time of some bytes and flights on [`LAN`] and on [`WAN`], in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkEstimate {
    pub lan_s: f64,
    pub wan_s: f64,
}

impl LinkEstimate {
    /// `bytes` (both directions) in `flights` flights on both reference links.
    pub fn of(bytes: u64, flights: u64) -> LinkEstimate {
        LinkEstimate {
            lan_s: LAN.estimate_seconds(bytes, flights),
            wan_s: WAN.estimate_seconds(bytes, flights),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn the_estimate_is_half_a_round_trip_per_flight_plus_the_transfer() {
        // 1,000 flights of 0.5 ms and 10 MB at 1 Gbit/s (80 ms).
        assert!(close(LAN.estimate_seconds(10_000_000, 1000), 0.5 + 0.08));
        // 1,000 flights of 20 ms and 10 MB at 400 Mbit/s (200 ms).
        assert!(close(WAN.estimate_seconds(10_000_000, 1000), 20.0 + 0.2));
        assert!(close(LAN.estimate_seconds(125_000_000, 0), 1.0));
        assert!(close(WAN.estimate_seconds(0, 3), 0.06));
        let e = LinkEstimate::of(10_000_000, 1000);
        assert!(close(e.lan_s, 0.58) && close(e.wan_s, 20.2), "{e:?}");
        let none = LinkCost {
            rtt: Duration::ZERO,
            bandwidth: None,
        };
        assert_eq!(none.estimate_seconds(1 << 30, 1000), 0.0);
        assert_eq!(LinkEstimate::of(0, 0), LinkEstimate::default());
        assert_eq!(LAN.to_string(), "RTT 1 ms, 1 Gbit/s");
        assert_eq!(WAN.to_string(), "RTT 40 ms, 400 Mbit/s");
        assert_eq!(none.to_string(), "RTT 0 ms, no cap");
    }
}
