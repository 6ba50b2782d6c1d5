//! A bench that fails reports both parties' errors: the server's, and the client process's own
//! (which used to be dropped when the server failed too).

use std::process::Command;

#[test]
fn a_failed_bench_reports_the_client_error_too() {
    // 10 iterations of 16 rows are far below the subfield VOLE's security floor: both parties
    // refuse the parameters, each with its own error.
    let out = Command::new(env!("CARGO_BIN_EXE_ciphergpt"))
        .args([
            "bench",
            "svole",
            "--rows",
            "16",
            "--inner",
            "64",
            "--cols",
            "64",
            "--iterations",
            "10",
            "--timeout",
            "30",
        ])
        .output()
        .expect("run ciphergpt");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    for part in [
        "server of the sVOLE bench",
        "security floor",
        "the client process (exit status: 1)",
        "client of the sVOLE bench",
    ] {
        assert!(err.contains(part), "{part:?} missing: {err}");
    }
}
