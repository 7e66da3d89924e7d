#!/usr/bin/env bash
# bench/run.sh [--quick] [other run-all.sh args]  -- mtlskit gateway vs nginx/HAProxy/stunnel/...
#
# Runs the shared mTLS yardstick (../shared/bench/run-all.sh, or $MTLS_BENCH_KIT) with our
# gateway as an extra row, then prints OUR CPU-cost ratios to the reference servers, all
# taken from the same run. Env knobs (plus every knob run-all.sh reads: DUR, REPS, TARGETS,
# SKIP_SPEED, SKIP_CROSSCHECK, INSTALL, BENCH_WORK...):
#   LOOP=uvloop|asyncio|both   event loop of the gateway row (default uvloop; "both" adds a
#                              second, shorter pass: asyncio gateway vs nginx only)
#   GW_FLAGS="..."             extra gateway flags, e.g. "--session-tickets 0"
#   REPORT_ONLY=DIR [DIR...]   skip the runs, print the ratio table for result dirs
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${MTLS_BENCH_KIT:-$ROOT/../shared/bench}
MTLSKIT=$ROOT/.venv/bin/mtlskit
WORK=${BENCH_WORK:-/tmp/mtls-bench}
LOOP=${LOOP:-uvloop} GW_FLAGS=${GW_FLAGS:-}
PYTHON=$ROOT/.venv/bin/python; [ -x "$PYTHON" ] || PYTHON=python3

gw_cmd() { # loop -> the command run-all.sh runs with bash -c (GW_* are expanded there)
  printf 'exec %q gateway --listen "$GW_LISTEN_HOST:$GW_LISTEN_PORT"' "$MTLSKIT"
  printf ' --upstream "http://$GW_UPSTREAM_HOST:$GW_UPSTREAM_PORT" --cert "$GW_SERVER_CERT"'
  printf ' --key "$GW_SERVER_KEY" --client-ca "$GW_CLIENT_CA" --min-version "$GW_TLS_MIN"'
  printf ' --mode http --workers 1 --allow-all --no-access-log %s %s' "$1" "$GW_FLAGS"
}

report() { # result dirs...
  "$PYTHON" - "$@" <<'EOF'
import json, os, statistics, sys
# issue 11's targets, as ratios to nginx in the same run
TARGETS = {"hs": 0.8, "hs12": 0.85, "hsrsa": 0.8, "ka": 1.0, "p99": 1.2, "bulk": 0.8}
ROWS = [("hs", "full mTLS hs, TLS1.3 EC (CPU-us)", "main", "hs", "1.3", "ec", "hs_per_s"),
        ("hs12", "full mTLS hs, TLS1.2 EC (CPU-us)", "tls12", "hs", "1.2", "ec", "hs_per_s"),
        ("hsrsa", "full mTLS hs, TLS1.3 RSA (CPU-us)", "rsa", "hs", "1.3", "rsa", "hs_per_s"),
        ("ka", "keep-alive request (CPU-us)", "main", "ka", "1.3", "ec", "rps"),
        ("p99", "keep-alive p99 latency (ms)", "main", "ka", "1.3", "ec", "p99_ms"),
        ("bulk", "bulk 1 MiB (CPU-us per MiB)", "main", "bulk", "1.3", "ec", "mb_per_s")]
for d in sys.argv[1:]:
    raw = os.path.join(d, "raw.jsonl")
    if not os.path.exists(raw):
        print(f"!! no {raw}"); continue
    rows = [json.loads(l) for l in open(raw) if l.strip()]
    names = list(dict.fromkeys(r["target"] for r in rows))
    refs = [n for n in ("nginx", "haproxy", "stunnel", "python-pyopenssl") if n in names]
    ours = [n for n in names if n.startswith("mtlskit")]
    def val(t, tag, test, tls, var, key):
        xs = [r for r in rows if (r["target"], r["tag"], r["test"], r["tls"], r["variant"]) ==
              (t, tag, test, tls, var) and "error" not in r and r.get(key)]
        if key == "p99_ms":
            xs = [r[key] for r in xs]
        else:  # server CPU-microseconds per unit, as bench.py report computes it
            xs = [r["srv_cpu"] / 100 / r[key] * 1e6 for r in xs]
        return statistics.median(xs) if xs else None
    f = lambda x: "-" if x is None else (f"{x:,.2f}" if x < 100 else f"{x:,.0f}")
    for g in ours:
        errs = sum(int(r.get("errors", 0)) + ("error" in r) for r in rows if r["target"] == g)
        print(f"\n== {g} vs references ({d}; gateway errors: {errs})")
        print(f"| metric | {g} | " + " | ".join(refs) + " | " +
              " | ".join(f"x {n}" for n in refs) + " | target | met |")
        print("|---" * (3 + 2 * len(refs) + 1) + "|")
        for k, title, *sel in ROWS:
            mine, rv = val(g, *sel), [val(n, *sel) for n in refs]
            ratios = [mine / v if mine and v else None for v in rv]
            tgt = TARGETS.get(k)
            met = "-" if tgt is None or ratios[0] is None or refs[0] != "nginx" else \
                  ("yes" if ratios[0] <= tgt else "NO")
            print(f"| {title} | {f(mine)} | " + " | ".join(f(v) for v in rv) + " | " +
                  " | ".join("-" if x is None else f"{x:.2f}x" for x in ratios) +
                  f" | {'<= %.2gx nginx' % tgt if tgt else ''} | {met} |")
EOF
}

if [ -n "${REPORT_ONLY:-}" ]; then report $REPORT_ONLY; exit; fi
[ -x "$KIT/run-all.sh" ] || { echo "no benchmark kit at $KIT (set MTLS_BENCH_KIT)" >&2; exit 1; }
[ -x "$MTLSKIT" ] || { echo "$MTLSKIT missing: run 'make test' or pip install -e . first" >&2; exit 1; }

case $LOOP in uvloop|asyncio) loops=("$LOOP") ;; both) loops=(uvloop asyncio) ;;  # asyncio = --no-uvloop
  *) echo "LOOP must be uvloop, asyncio or both" >&2; exit 2 ;; esac
dirs=()
for i in "${!loops[@]}"; do
  l=${loops[$i]}; flag=--uvloop; [ "$l" = asyncio ] && flag=--no-uvloop
  if [ "$i" -eq 0 ]; then
    "$KIT/run-all.sh" --gateway "$(gw_cmd "$flag")" --gateway-name "mtlskit-$l" "$@" || exit
  else  # extra pass: only nginx as the yardstick, no extras
    TARGETS=nginx SKIP_SPEED=1 SKIP_CROSSCHECK=1 INSTALL=0 \
      "$KIT/run-all.sh" --gateway "$(gw_cmd "$flag")" --gateway-name "mtlskit-$l" "$@" || exit
  fi
  dirs+=("$(readlink -f "$WORK/results/latest")")
done
report "${dirs[@]}" | tee "${dirs[0]}/mtlskit-ratios.md"
