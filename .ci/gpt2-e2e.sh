#!/usr/bin/env bash
# GPT-2 small end to end between two processes (issue 7's second acceptance line):
# compile examples/gpt2.cgpt --seed 1, start `ciphergpt serve`, run `ciphergpt generate` with a
# 32-token prompt and 8 new tokens on loopback, print the cost report and check that the decode
# steps cost about the same whatever the position (bytes within 1.5x of each other, the silent-OT
# batches a step may run when it empties a pool left out).
#
#   .ci/gpt2-e2e.sh [WORKDIR]       (default WORKDIR: target/gpt2-e2e; the plan is reused)
#
# Environment: CIPHERGPT (the binary; default: cargo build --release and use it), PROMPT_TOKENS
# (default 32), NEW_TOKENS (default 8), TIME_V=1 to measure each process with /usr/bin/time -v,
# GENERATE_FLAGS (more flags for `generate`, e.g. "--preprocess-tokens 0" or "--ot iknp"),
# REPORT (the JSON report's file; default WORKDIR/report.json), LINK (lan, wan or rtt=…,bw=…:
# the client reaches the server through `ciphergpt relay --link LINK`, both directions delayed).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-${CARGO_TARGET_DIR:-target}/gpt2-e2e}
mkdir -p "$work"
work=$(cd "$work" && pwd)
if [[ -z "${CIPHERGPT:-}" ]]; then
    cargo build --release --quiet
    CIPHERGPT=${CARGO_TARGET_DIR:-target}/release/ciphergpt
fi
prompt_tokens=${PROMPT_TOKENS:-32}
new_tokens=${NEW_TOKENS:-8}
timev=()
if [[ "${TIME_V:-0}" == 1 ]]; then
    timev=(/usr/bin/time -v)
fi

plan=$work/plan
report=${REPORT:-$work/report.json}
read -r -a generate_flags <<<"${GENERATE_FLAGS:-}"
# A plan older than the binary is compiled again (the compiler's choices may have changed).
if [[ ! -f $plan/plan.cgp || ! -f $plan/weights.cgw || $plan/plan.cgp -ot $CIPHERGPT ]]; then
    echo "compiling examples/gpt2.cgpt --seed 1 into $plan"
    "$CIPHERGPT" compile examples/gpt2.cgpt --seed 1 -o "$plan"
fi

# A fixed prompt of token ids spread over the vocabulary.
tokens=$(awk -v n="$prompt_tokens" 'BEGIN { for (i = 0; i < n; i++) printf "%s%d", (i ? "," : ""), (i * 7919 + 464) % 50257 }')

# await PID LOG SED-EXPR TRIES: the address the process PID prints in LOG (SED-EXPR extracts
# it), polled every 0.2 s; exits with the log if the process dies or never prints it.
await() {
    local pid=$1 log=$2 expr=$3 tries=$4 found=
    for _ in $(seq 1 "$tries"); do
        found=$(sed -n "$expr" "$log")
        [[ -n $found ]] && break
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.2
    done
    [[ -n $found ]] || { echo "no address in $log" >&2; cat "$log" >&2; exit 1; }
    echo "$found"
}

rm -f "$work/serve.log" "$report"
"${timev[@]}" "$CIPHERGPT" serve --plan "$plan" --listen 127.0.0.1:0 --sessions 1 --timeout 600 \
    2>"$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
addr=$(await $server "$work/serve.log" 's/^serving .* on \([0-9.:]*\)$/\1/p' 1500)
sed -n '/^encoded/p' "$work/serve.log"
relay=
if [[ -n "${LINK:-}" ]]; then
    rm -f "$work/relay.log"
    "$CIPHERGPT" relay --listen 127.0.0.1:0 --connect "$addr" --link "$LINK" --timeout 600 \
        2>"$work/relay.log" &
    relay=$!
    trap 'kill $server $relay 2>/dev/null || true' EXIT
    addr=$(await $relay "$work/relay.log" 's/^relaying \([0-9.:]*\) -> .*$/\1/p' 50)
    sed -n 1p "$work/relay.log"
fi

start=$(date +%s)
if ! "${timev[@]}" "$CIPHERGPT" generate --plan "$plan" --connect "$addr" --tokens "$tokens" \
    --max-new-tokens "$new_tokens" --timeout 600 --report "$report" ${generate_flags[@]+"${generate_flags[@]}"} \
    >"$work/generate.out" 2>"$work/generate.log"; then
    tr '\r' '\n' <"$work/generate.log" | tail -5
    tail -3 "$work/serve.log"
    exit 1
fi
end=$(date +%s)
wait $server
[[ -z $relay ]] || kill $relay 2>/dev/null || true
trap - EXIT
echo "tokens: $(cat "$work/generate.out")"
# The table (the prefill progress lines end in carriage returns).
tr '\r' '\n' <"$work/generate.log" | grep -v '^.\[K\[prefill ' | sed 's/^.\[K//'
grep '^session' "$work/serve.log"
echo "wall time of the client: $((end - start)) s"

# The decode steps' spread, from the table's "decode steps" line: bytes without the OT refills
# (a refill lands in whichever step empties a pool), max/min <= 1.5.
spread=$(sed -n 's/^decode steps:.*; without OT refills [^(]*(max\/min \([0-9.]*\)).*/\1/p' "$work/generate.log")
[[ -n $spread ]] || { echo "no decode-step line in the report"; exit 1; }
if awk -v s="$spread" 'BEGIN { exit !(s <= 1.5) }'; then
    echo "decode steps: bytes without OT refills max/min $spread <= 1.5: OK"
else
    echo "decode steps: bytes without OT refills max/min $spread > 1.5: the cost grows with the position"
    exit 1
fi
