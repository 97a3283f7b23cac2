#!/usr/bin/env python3
"""Before and after: ``mailseal milter`` of an older commit against the working tree.

Both run on the same tutorial-style files and key (see bench_milter.py), in one run,
turn about: signing (or with ``--mode verify``, verifying) 2 KB at the milter level
(``mailseal bench``, 1 and 20 connections, milter_protocol 2 and 6) and end to end
through a private Postfix (smtp-source -s 20, 1500 messages; to verify, the
milters' TrustedHosts leave this host out and the message carries a signature).
Reports messages/s and the milter's CPU ms per message, medians of ``--reps`` runs.
The old tree is ``git archive COMMIT mailseal`` unpacked into a temporary directory
(removed afterwards); needs root, as bench_milter.

    .venv/bin/python benchmarks/ab_milter.py --base 9cc23ec     # about 6 minutes
    .venv/bin/python benchmarks/ab_milter.py --base 9cc23ec --mode verify
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import milter_rig as mr  # noqa: E402  (puts the repo and the harness on sys.path)

from mailseal.bench.corpus import make_message, raw_message  # noqa: E402
from mailseal.dkim.canon import Canon  # noqa: E402
from mailseal.dkim.keys import load_private_key  # noqa: E402
from mailseal.dkim.sign import SignerSpec, sign_message  # noqa: E402

ph = mr.ph


class TreeMilter(ph.Milter):
    """``python -m mailseal milter`` from another source tree."""

    tree: Path = Path()

    def start(self, timeout: float = 30) -> TreeMilter:
        self.write_files()
        self.logfile = self.dir / "milter.log"
        env = dict(os.environ, PYTHONPATH=str(self.tree))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailseal", "milter", "-f", "-x", str(self.conf)],
            stdout=self.logfile.open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.tree,
            start_new_session=True,
        )
        if not ph.wait_port("127.0.0.1", self.port, timeout, lambda: self.proc.poll() is None):
            raise RuntimeError(f"old milter did not start:\n{self.log()}")
        return self


def unpack(commit: str, into: Path) -> Path:
    data = subprocess.run(
        ["git", "-C", str(mr.REPO), "archive", "--format=tar", commit, "mailseal"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    into.chmod(0o755)
    return into


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="the commit to compare with")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mode", choices=("sign", "verify"), default="sign")
    args = ap.parse_args()
    verify = args.mode == "verify"
    tree = unpack(args.base, Path(tempfile.mkdtemp(prefix="mailseal-ab-", dir="/run")))
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        with mr.rig() as rig:
            new = rig.milter("mailseal", "new", verify=verify)
            kw = {"trusted_hosts": ph.EXTERNAL_TRUSTED_HOSTS} if verify else {}
            old = TreeMilter(
                "mailseal", "old", rig.base / "old", rig.key, rig.dns.addr, host="127.0.0.1", **kw
            )
            old.tree = tree
            rig.milters.append(old)
            old.start()
            key = rig.base / "key.pem"
            key.write_bytes(rig.key.pem.read_bytes())
            key.chmod(0o600)
            pair = (("before", old), ("after", new))
            for _ in range(args.reps):
                for name, m in pair:
                    for p in (2, 6):
                        for c in (1, 20):
                            n = 100 if c == 1 else 2000
                            r = mr.bench_run(
                                m,
                                mode=args.mode,
                                size="2k",
                                messages=n,
                                concurrency=c,
                                protocol=p,
                                key_pem=key,
                            )
                            key_ = f"milter level, p{p}, {c} connection(s), {name}"
                            results.setdefault(key_, []).append((r.rate, r.cpu_ms_per_msg))
            raw = raw_message(make_message("2k", mr.DOMAIN, mr.SENDER))
            if verify:
                spec = SignerSpec(
                    load_private_key(key.read_bytes()),
                    mr.DOMAIN,
                    mr.SELECTOR,
                    header_canon=Canon.RELAXED,
                    body_canon=Canon.SIMPLE,
                )
                fields = sign_message(raw, [spec], int(time.time()))
                raw = b"".join(f + b"\r\n" for f in fields) + raw
            msg = mr.write_lf(rig.base / "m.eml", raw)
            sink = mr.Sink(rig.base / "e2e")
            try:
                for p in (2, 6):
                    pf = ph.PostfixInstance(
                        sink.port,
                        {"milter_protocol": str(p), "milter_default_action": "tempfail"},
                        base=ph.scratch_base("mailseal-ab-postfix-"),
                    )
                    for name, m in pair:
                        pf.add_listener(name, {"smtpd_milters": m.socket_spec})
                    pf.start()
                    try:
                        for _ in range(args.reps):
                            for name, m in pair:
                                e = mr.e2e_run(
                                    pf, name, sink, msg, messages=1500, sessions=20, milter=m
                                )
                                if e.problems:
                                    print(f"problems: {e.problems}", file=sys.stderr)
                                results.setdefault(f"end to end, p{p}, {name}", []).append(
                                    (e.rate, e.cpu_ms_per_msg or 0.0)
                                )
                                sink.clear()
                    finally:
                        pf.cleanup()
            finally:
                sink.stop()
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    print(f"{args.mode}, before = {args.base}, after = the working tree; medians of {args.reps}")
    print("| test | msgs/s | milter CPU ms/msg |\n|---|---:|---:|")
    for k, v in results.items():
        rate = statistics.median(x[0] for x in v)
        cpu = statistics.median(x[1] for x in v)
        print(f"| {k} | {rate:,.1f} | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
