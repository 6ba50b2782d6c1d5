//! Fuzzing the parsers on stable Rust, without instrumentation: inputs made by [`mutate`] from
//! committed fixtures, each handed to a [`Target`]'s check under `catch_unwind`, with a clock.
//!
//! The property every target holds: its parser returns a value or a one-line error, never a
//! panic and never a hang. A target may add its own (what decodes encodes back the same). An
//! input that breaks it is a [`Finding`], written to the save folder as
//! `TARGET-KIND-SEED-INDEX.bin`; input `INDEX` of the run of seed `SEED` can also be made again
//! on its own ([`Options::start`]). An input slower than [`Options::slow`] is a finding too; one
//! still running after [`Options::hang`] is written out by a watchdog, which then ends the
//! process (a hang cannot be unwound).
//!
//! The targets of the compiler's parsers are in [`targets`] (with the fixtures they start from
//! in [`seeds`]); the session messages' target is the runtime's (`net::wire::fuzz::target`).
//! `ciphergpt fuzz` runs any of them; see docs/fuzzing.md.

pub mod mutate;
pub mod seeds;
pub mod targets;

use mutate::Mutator;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// What a parser made of an input (accepted orders first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Parsed (and whatever the target checks after parsing held).
    Accepted,
    /// Refused with a clean one-line error.
    Refused,
}

/// Runs one parser on one input: the verdict, or what broke the target's property.
pub type Check = Box<dyn Fn(&[u8]) -> Result<Verdict, String> + Send + Sync>;

/// One parser, its seeds, and its check.
pub struct Target {
    pub name: &'static str,
    /// A text format: the mutator adds line and token edits.
    pub text: bool,
    pub seeds: Vec<Vec<u8>>,
    pub check: Check,
}

/// The verdict for a parser's error: refused, if the message is one non-empty line.
pub fn refused(error: &dyn std::fmt::Display) -> Result<Verdict, String> {
    let m = error.to_string();
    if m.trim().is_empty() || m.contains('\n') {
        return Err(format!("the error is not one line: {m:?}"));
    }
    Ok(Verdict::Refused)
}

/// How to run a target.
#[derive(Clone, Debug)]
pub struct Options {
    /// The run's seed: with the index, it fixes each input.
    pub seed: u64,
    /// The first input's index.
    pub start: u64,
    pub iterations: u64,
    /// Threads (inputs are dealt round robin).
    pub jobs: usize,
    /// An input that takes longer is a finding.
    pub slow: Duration,
    /// An input still running after this long ends the process (after it is saved).
    pub hang: Duration,
    /// Where findings are written (none: not written).
    pub save: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            seed: 1,
            start: 0,
            iterations: 10_000,
            jobs: 1,
            slow: Duration::from_secs(2),
            hang: Duration::from_secs(60),
            save: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Panic,
    /// The target's property broken otherwise (an error of several lines, a failed round trip).
    Broken,
    Slow,
}

/// An input that broke the property.
#[derive(Clone, Debug)]
pub struct Finding {
    pub index: u64,
    pub kind: Kind,
    pub message: String,
    pub len: usize,
    pub saved: Option<PathBuf>,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub inputs: u64,
    pub accepted: u64,
    /// The first findings by index (at most [`MAX_KEPT`]); `failures` counts them all.
    pub findings: Vec<Finding>,
    pub failures: u64,
    pub slowest: Duration,
    pub slowest_index: u64,
    pub elapsed: Duration,
}

impl Report {
    /// Add another part's counts and findings (the first [`MAX_KEPT`] by index are kept).
    pub fn absorb(&mut self, p: Report) {
        self.inputs += p.inputs;
        self.accepted += p.accepted;
        self.failures += p.failures;
        self.findings.extend(p.findings);
        self.findings.sort_by_key(|f| f.index);
        self.findings.truncate(MAX_KEPT);
        if p.slowest > self.slowest {
            (self.slowest, self.slowest_index) = (p.slowest, p.slowest_index);
        }
        self.elapsed += p.elapsed;
    }
}

/// Findings kept (and saved) per run.
pub const MAX_KEPT: usize = 20;

thread_local! {
    static FUZZING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A panic hook that, on a thread that is running a fuzz input, records the panic's message and
/// place instead of printing it; elsewhere it hands over to the hook it replaced.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if FUZZING.with(Cell::get) {
                let m = info.to_string().replace('\n', " ");
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(m));
            } else {
                previous(info);
            }
        }));
    });
}

/// Run one input: the verdict, or the finding's kind and message.
pub fn check_one(target: &Target, input: &[u8]) -> Result<Verdict, (Kind, String)> {
    install_hook();
    FUZZING.with(|f| f.set(true));
    let r = catch_unwind(AssertUnwindSafe(|| (target.check)(input)));
    FUZZING.with(|f| f.set(false));
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(m)) => Err((Kind::Broken, m)),
        Err(_) => Err((
            Kind::Panic,
            LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "a panic".into()),
        )),
    }
}

/// The input each job of the process runs (its index plus one; 0 when idle), job `j` in slot
/// `j % 64`, readable from a signal handler: what was running when an allocation failed and
/// the process aborted (`ciphergpt fuzz` prints it on SIGABRT).
pub static IN_FLIGHT: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

/// One job's clock: the index of the input it runs and when it began (ms since the run's start,
/// plus one; 0 when idle).
struct Clock {
    index: AtomicU64,
    began: AtomicU64,
}

/// Run `options.iterations` inputs of `target`.
pub fn run(target: &Target, options: &Options) -> Report {
    let mutator = Mutator::new(target.seeds.clone(), target.text, options.seed);
    let jobs = options.jobs.max(1);
    let t0 = Instant::now();
    let clocks: Vec<Clock> = (0..jobs)
        .map(|_| Clock {
            index: AtomicU64::new(0),
            began: AtomicU64::new(0),
        })
        .collect();
    let done = AtomicBool::new(false);
    let parts: Vec<Report> = std::thread::scope(|s| {
        s.spawn(|| watchdog(target, &mutator, options, &clocks, &done, t0));
        let handles: Vec<_> = (0..jobs)
            .map(|j| {
                let (mutator, clock) = (&mutator, &clocks[j]);
                s.spawn(move || job(target, mutator, options, j, jobs, clock, t0))
            })
            .collect();
        let parts = handles
            .into_iter()
            .map(|h| h.join().expect("a fuzz job does not panic"))
            .collect();
        done.store(true, Ordering::Relaxed);
        parts
    });
    let mut report = Report::default();
    for p in parts {
        report.absorb(p);
    }
    report.elapsed = t0.elapsed();
    report
}

fn job(
    target: &Target,
    mutator: &Mutator,
    options: &Options,
    j: usize,
    jobs: usize,
    clock: &Clock,
    t0: Instant,
) -> Report {
    let mut r = Report::default();
    let end = options.start.saturating_add(options.iterations);
    let mut index = options.start + j as u64;
    while index < end {
        let input = mutator.input(index);
        clock.index.store(index, Ordering::Relaxed);
        IN_FLIGHT[j % 64].store(index + 1, Ordering::Relaxed);
        clock
            .began
            .store(t0.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
        let began = Instant::now();
        let verdict = check_one(target, &input);
        let took = began.elapsed();
        clock.began.store(0, Ordering::Relaxed);
        IN_FLIGHT[j % 64].store(0, Ordering::Relaxed);
        r.inputs += 1;
        if took > r.slowest {
            (r.slowest, r.slowest_index) = (took, index);
        }
        let finding = match verdict {
            Ok(Verdict::Accepted) => {
                r.accepted += 1;
                None
            }
            Ok(Verdict::Refused) => None,
            Err(km) => Some(km),
        };
        let finding = finding
            .or_else(|| (took > options.slow).then(|| (Kind::Slow, format!("took {took:.1?}"))));
        if let Some((kind, message)) = finding {
            r.failures += 1;
            if r.findings.len() < MAX_KEPT {
                let saved = save(options, target.name, kind, index, &input);
                r.findings.push(Finding {
                    index,
                    kind,
                    message,
                    len: input.len(),
                    saved,
                });
            }
        }
        index += jobs as u64;
    }
    r
}

/// Watch the jobs' clocks; write out an input that runs past `options.hang`, then end the
/// process with status 3.
fn watchdog(
    target: &Target,
    mutator: &Mutator,
    options: &Options,
    clocks: &[Clock],
    done: &AtomicBool,
    t0: Instant,
) {
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let now = t0.elapsed().as_millis() as u64 + 1;
        for c in clocks {
            let began = c.began.load(Ordering::Relaxed);
            if began != 0 && now - began > options.hang.as_millis() as u64 {
                let index = c.index.load(Ordering::Relaxed);
                let input = mutator.input(index);
                let saved = save(options, target.name, Kind::Slow, index, &input);
                eprintln!(
                    "fuzz {}: input {index} of seed {} ({} bytes) still runs after {:?}{}",
                    target.name,
                    options.seed,
                    input.len(),
                    options.hang,
                    saved.map_or(String::new(), |p| format!("; saved to {}", p.display()))
                );
                std::process::exit(3);
            }
        }
    }
}

fn save(options: &Options, name: &str, kind: Kind, index: u64, input: &[u8]) -> Option<PathBuf> {
    let dir = options.save.as_deref()?;
    let kind = format!("{kind:?}").to_lowercase();
    let path = dir.join(format!("{name}-{kind}-{}-{index}.bin", options.seed));
    std::fs::create_dir_all(dir).ok()?;
    std::fs::write(&path, input).ok()?;
    Some(path)
}

/// Run a saved input (a finding's file) through the target.
pub fn replay(target: &Target, path: &Path) -> std::io::Result<Result<Verdict, (Kind, String)>> {
    let input = std::fs::read(path)?;
    Ok(check_one(target, &input))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(check: Check) -> Target {
        Target {
            name: "test",
            text: false,
            seeds: vec![vec![0x55; 8]],
            check,
        }
    }

    fn options(iterations: u64, dir: &str) -> Options {
        let save = std::env::temp_dir().join(format!("cgp-fuzz-{}-{dir}", std::process::id()));
        Options {
            iterations,
            jobs: 2,
            save: Some(save),
            ..Default::default()
        }
    }

    #[test]
    fn a_panic_is_a_finding_with_its_input_saved() {
        let t = target(Box::new(|b| {
            assert!(!b.contains(&0xff), "an 0xff byte");
            Ok(Verdict::Accepted)
        }));
        let o = options(2_000, "panic");
        let r = run(&t, &o);
        assert_eq!(r.inputs, 2_000);
        assert!(r.failures > 0 && r.failures < 2_000, "{}", r.failures);
        assert_eq!(r.accepted + r.failures, 2_000);
        let f = &r.findings[0];
        assert_eq!(f.kind, Kind::Panic);
        assert!(f.message.contains("an 0xff byte"), "{}", f.message);
        assert!(
            f.message.contains("compiler/src/fuzz/mod.rs:"),
            "{}",
            f.message
        );
        // The file holds the input, which is input `index` of the run, and fails again.
        let saved = std::fs::read(f.saved.as_ref().unwrap()).unwrap();
        let m = Mutator::new(t.seeds.clone(), false, o.seed);
        assert_eq!(saved, m.input(f.index));
        let again = replay(&t, f.saved.as_ref().unwrap()).unwrap();
        assert!(matches!(again, Err((Kind::Panic, _))));
        // Another run of the same seed finds the same inputs, whatever the threads.
        let r1 = run(&t, &Options { jobs: 1, ..o });
        let idx = |r: &Report| r.findings.iter().map(|f| f.index).collect::<Vec<_>>();
        assert_eq!(idx(&r1), idx(&r));
    }

    #[test]
    fn errors_of_several_lines_and_slow_inputs_are_findings() {
        let t = target(Box::new(|b| match b.len() {
            0..=7 => refused(&"two\nlines"),
            8 => refused(&"one line"),
            _ => {
                std::thread::sleep(Duration::from_millis(30));
                Ok(Verdict::Accepted)
            }
        }));
        let o = Options {
            slow: Duration::from_millis(20),
            ..options(300, "lines")
        };
        let r = run(&t, &o);
        let kinds: Vec<Kind> = r.findings.iter().map(|f| f.kind).collect();
        assert!(
            kinds.contains(&Kind::Broken) && kinds.contains(&Kind::Slow),
            "{kinds:?}"
        );
        for f in &r.findings {
            match f.kind {
                Kind::Broken => assert!(f.len < 8 && f.message.contains("not one line")),
                _ => assert!(f.len > 8 && f.message.starts_with("took ")),
            }
        }
        assert!(r.slowest >= Duration::from_millis(30));
    }
}
