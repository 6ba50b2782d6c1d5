//! The session report as a table (`generate` and `demo` print it on stderr): CipherGPT's Table V
//! per op class, each row with its link time on lan and wan, then the decode steps one by one.

use ciphergpt_compiler::plan::cost::OpClass;
use ciphergpt_runtime::session::{CostLine, ProgramCost, SessionReport, OP_CLASSES, OT_REFILL};

/// The report as CipherGPT's Table V: per op class, the preparation, the prefill and the mean
/// decode step, each row with its link time estimated on lan and wan; then the decode step's
/// estimated time on each link, and the steps one by one.
pub fn table(r: &SessionReport) -> String {
    let mut s = format!(
        "cost seen by the {} ({} threads, {} lanes); OT setup {:.2} s, {:.1} kB\n",
        r.party,
        r.threads,
        r.lanes,
        r.setup.seconds,
        r.setup.bytes() as f64 / 1e3
    );
    let of = |f: fn(&str) -> bool| -> Vec<&ProgramCost> {
        r.programs.iter().filter(|p| f(&p.program)).collect()
    };
    let prefill = of(|p| p == "prefill");
    let decode = of(|p| p.starts_with("decode"));
    let pre: Vec<&ProgramCost> = r.preprocess.iter().collect();
    if !pre.is_empty() {
        let all = sum_programs(&pre);
        s += &format!(
            "preprocessing: the prepared weight products and non-linear layers for {} decode \
             steps, in {} batch(es) (before the prompt, then when they run out)\n",
            all.tokens,
            pre.len()
        );
        s += &block(&[&all]);
    }
    if let Some(p) = prefill.first() {
        s += &format!("prefill: {} tokens\n", p.tokens);
        s += &block(&prefill);
    }
    if let (Some(first), Some(last)) = (decode.first(), decode.last()) {
        s += &format!(
            "decode{}: mean of {} steps (positions {}..{}; first {:.2} s, last {:.2} s)\n",
            if pre.is_empty() { "" } else { " (online)" },
            decode.len(),
            first.positions,
            last.positions,
            first.total.seconds,
            last.total.seconds
        );
        s += &block(&decode);
    }
    if let Some(sp) = r.decode_spread() {
        let on = |link: &str, est: f64| {
            format!(
                "on {link}: about {:.3} s (measured compute {:.3} s + link {:.3} s)",
                sp.seconds.mean + est,
                sp.seconds.mean,
                est
            )
        };
        s += &format!(
            "decode step {}; {}\n",
            on("lan", sp.lan_s.mean),
            on("wan", sp.wan_s.mean)
        );
    }
    s += &steps(r);
    s
}

/// One block of the table: per op class and in total, the mean over `progs` of the seconds,
/// the bytes (with their shares), each direction, the rounds, and the link time estimated on lan
/// and wan from that row's bytes and rounds.
fn block(progs: &[&ProgramCost]) -> String {
    let k = progs.len() as f64;
    let mean = |f: &dyn Fn(&ProgramCost) -> f64| progs.iter().map(|p| f(p)).sum::<f64>() / k;
    let mut s = format!(
        "{:<11} {:>9} {:>7} {:>11} {:>7} {:>11} {:>11} {:>7} {:>9} {:>9}\n",
        "op class",
        "seconds",
        "share",
        "bytes",
        "share",
        "sent",
        "received",
        "rounds",
        "LAN s",
        "WAN s"
    );
    let tot_s = mean(&|p| p.total.seconds);
    let tot_b = mean(&|p| p.total.bytes() as f64);
    for (i, name) in OP_CLASSES.iter().chain(["total"].iter()).enumerate() {
        let get = |p: &ProgramCost| -> CostLine {
            if i < OP_CLASSES.len() {
                p.classes[i].clone()
            } else {
                p.total.clone()
            }
        };
        let secs = mean(&|p| get(p).seconds);
        let sent = mean(&|p| get(p).bytes_sent as f64);
        let recv = mean(&|p| get(p).bytes_received as f64);
        if sent + recv == 0.0 && (*name == OpClass::Local.name() || *name == OT_REFILL) {
            continue;
        }
        s += &format!(
            "{:<11} {:>9.3} {:>6.1}% {:>11} {:>6.1}% {:>11} {:>11} {:>7.0} {:>9.3} {:>9.3}\n",
            name,
            secs,
            100.0 * secs / tot_s.max(1e-12),
            human(sent + recv),
            100.0 * (sent + recv) / tot_b.max(1.0),
            human(sent),
            human(recv),
            mean(&|p| get(p).rounds as f64),
            mean(&|p| get(p).estimate.lan_s),
            mean(&|p| get(p).estimate.wan_s)
        );
    }
    s
}

/// The sum of several programs' costs (the preparation batches of a session).
fn sum_programs(progs: &[&ProgramCost]) -> ProgramCost {
    let mut all = ProgramCost {
        program: "preprocess".into(),
        ..(*progs[0]).clone()
    };
    all.tokens = progs.iter().map(|p| p.tokens).sum();
    for p in &progs[1..] {
        for (a, b) in all.classes.iter_mut().zip(&p.classes) {
            a.add(b);
        }
        all.total.add(&p.total);
    }
    all
}

/// Each decode step's totals (the first and last 10 of a longer run), then their spread: a step
/// never re-runs the prefix, so its cost should not grow with the position.
fn steps(r: &SessionReport) -> String {
    let Some(sp) = r.decode_spread() else {
        return String::new();
    };
    let mut s = format!(
        "{:<11} {:>9} {:>11} {:>11} {:>11} {:>11} {:>7}\n",
        "step", "position", "seconds", "bytes", "sent", "received", "rounds"
    );
    let decode: Vec<&ProgramCost> = r
        .programs
        .iter()
        .filter(|p| p.program.starts_with("decode"))
        .collect();
    for (i, p) in decode.iter().enumerate() {
        if decode.len() > 20 && (10..decode.len() - 10).contains(&i) {
            if i == 10 {
                s += &format!("{:<11}\n", "…");
            }
            continue;
        }
        let t = &p.total;
        s += &format!(
            "{:<11} {:>9} {:>11.3} {:>11} {:>11} {:>11} {:>7}\n",
            p.program,
            p.positions,
            t.seconds,
            human((t.bytes_sent + t.bytes_received) as f64),
            human(t.bytes_sent as f64),
            human(t.bytes_received as f64),
            t.rounds
        );
    }
    s += &format!(
        "decode steps: {} (positions {}..{}); seconds {:.2}..{:.2} (max/min {:.2}); \
         bytes {}..{} (max/min {:.3}); without OT refills {}..{} (max/min {:.3}); \
         rounds {:.0}..{:.0}\n",
        sp.steps,
        sp.first_position,
        sp.last_position,
        sp.seconds.min,
        sp.seconds.max,
        sp.seconds.ratio(),
        human(sp.bytes.min),
        human(sp.bytes.max),
        sp.bytes.ratio(),
        human(sp.bytes_without_refills.min),
        human(sp.bytes_without_refills.max),
        sp.bytes_without_refills.ratio(),
        sp.rounds.min,
        sp.rounds.max
    );
    s
}

fn human(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}
