#!/usr/bin/env python3
"""How many workers: mailseal with one worker and with N, through a private Postfix.

Starts OpenDKIM and ``mailseal milter`` with each ``--workers`` count on the tutorial's
files (as bench_milter.py), then sends the same 2 KB message with smtp-source
(20 sessions) through one Postfix (a listener per milter), turn about, and reports
messages/s and the milter's CPU ms per message (its process tree), medians of
``--reps``. ``--mode verify`` leaves this host out of TrustedHosts and signs the
message, so the milters verify. Needs root, as bench_milter.py.

    .venv/bin/python benchmarks/workers.py --mode verify            # 1 and 2 workers
    .venv/bin/python benchmarks/workers.py --workers 1,2,4 --protocol 6
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import milter_rig as mr  # noqa: E402  (puts the repo and the harness on sys.path)

from mailseal.bench.corpus import make_message, raw_message  # noqa: E402
from mailseal.dkim.canon import Canon  # noqa: E402
from mailseal.dkim.keys import load_private_key  # noqa: E402
from mailseal.dkim.sign import SignerSpec, sign_message  # noqa: E402

ph = mr.ph


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("sign", "verify"), default="sign")
    ap.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    ap.add_argument("--protocol", choices=("2", "6"), default="2")
    ap.add_argument("--messages", type=int, default=1500)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-opendkim", action="store_true")
    args = ap.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    verify = args.mode == "verify"
    rows: dict[str, list[tuple[float, float]]] = {}
    with mr.rig() as rig:
        milters: dict[str, ph.Milter] = {}
        if not args.no_opendkim:
            milters["OpenDKIM"] = rig.milter("opendkim", "opendkim", verify=verify)
        for n in counts:
            milters[f"mailseal, {n} worker(s)"] = rig.milter(
                "mailseal", f"mailseal-{n}w", verify=verify, extra=(f"MailsealWorkers {n}",)
            )
        raw = raw_message(make_message("2k", mr.DOMAIN, mr.SENDER))
        if verify:
            spec = SignerSpec(
                load_private_key(rig.key.pem.read_bytes()),
                mr.DOMAIN,
                mr.SELECTOR,
                header_canon=Canon.RELAXED,
                body_canon=Canon.SIMPLE,
            )
            raw = b"".join(f + b"\r\n" for f in sign_message(raw, [spec], int(time.time()))) + raw
        message = mr.write_lf(rig.base / "m.eml", raw)
        sink = mr.Sink(rig.base / "sink")
        pf = ph.PostfixInstance(
            sink.port,
            {
                "milter_protocol": args.protocol,
                "milter_default_action": "tempfail",
                "smtpd_milters": "",
                "non_smtpd_milters": "",
            },
            base=ph.scratch_base("mailseal-workers-"),
        )
        listeners = {name: f"l{i}" for i, name in enumerate(milters)}
        for name, m in milters.items():
            pf.add_listener(listeners[name], {"smtpd_milters": m.socket_spec})
        names = list(milters)
        try:
            pf.start()
            for rep in range(args.reps):
                k = rep % len(names)
                for name in names[k:] + names[:k]:  # a different one first each time
                    run = mr.e2e_run(
                        pf,
                        listeners[name],
                        sink,
                        message,
                        messages=args.messages,
                        sessions=20,
                        milter=milters[name],
                    )
                    mr.wait_queue_empty(pf, 60)
                    sink.clear()
                    if run.problems:
                        print(f"{name}: {run.problems[:3]}", file=sys.stderr)
                    rows.setdefault(name, []).append((run.rate, run.cpu_ms_per_msg or 0.0))
                    print(
                        f"  {name}: {run.rate:.1f} msgs/s, {run.cpu_ms_per_msg:.3f} ms/msg",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            pf.cleanup()
            sink.stop()
    print(
        f"{args.mode} 2 KB through Postfix, milter_protocol {args.protocol}, medians of {args.reps}"
    )
    print("| milter | msgs/s | CPU ms/msg |\n|---|---:|---:|")
    for name, values in rows.items():
        rate = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"| {name} | {rate:,.1f} | {cpu:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
