#!/usr/bin/env python3
"""mailseal milter against OpenDKIM (and dkimpy-milter), side by side, in one run.

Starts OpenDKIM, ``mailseal milter`` and, where it is installed, dkimpy-milter on the
tutorial's files (opendkim.conf with relaxed/simple, Mode sv, refile: KeyTable,
SigningTable and TrustedHosts, one RSA-2048 key from opendkim-genkey, nsd on loopback
serving its record), then measures, with every figure the median of several runs and
every ratio mailseal/OpenDKIM taken from this run:

- milter level (``mailseal bench``, 20 connections, milter_protocol 2 and 6): sign
  2 KB, verify 2 KB, sign 200 KB: messages/s, p99 latency, CPU ms per message of the
  milter's process tree (utime+stime of the parent and its children, /proc);
- throughput against concurrency (1..32) for each milter, and mailseal with one
  worker and with one per core (its default is half the cores), plotted to
  docs/performance-milter.png;
- memory: peak RSS per worker (VmHWM, reset before) with 2 KB messages and with one
  50 MB message, at the milter level and through Postfix;
- end to end: smtp-source (20 sessions) -> a private Postfix (queue on tmpfs, loopback,
  ``smtpd_milters``) -> smtp-sink, for Postfix alone and with each milter: sign 2 KB
  and 200 KB, verify 2 KB, one 50 MB message.

Correctness is part of every figure: ``mailseal bench`` verifies each returned
signature against the public key (and checks each Authentication-Results); the end to
end runs check every delivered message for the signature or the dkim=pass result and
verify a sample with dkimpy. Runs with errors are reported as such.

Needs root (private Postfix, nsd on port 53, OpenDKIM's key ownership), postfix,
opendkim, nsd. Every process started is stopped by its PID.

    .venv/bin/python benchmarks/bench_milter.py            # full run, about 15 minutes
    .venv/bin/python benchmarks/bench_milter.py --quick    # about 2 minutes
    .venv/bin/python benchmarks/bench_milter.py --json out.json --plot out.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dkim as dkimpy  # noqa: E402
import milter_rig as mr  # noqa: E402  (puts the repo and the harness on sys.path)

from mailseal.bench.check import dkim_results  # noqa: E402
from mailseal.bench.corpus import make_message, raw_message  # noqa: E402
from mailseal.dkim.canon import Canon  # noqa: E402
from mailseal.dkim.keys import load_private_key  # noqa: E402
from mailseal.dkim.sign import SignerSpec, sign_message  # noqa: E402
from mailseal.message.headers import split_fields  # noqa: E402
from mailseal.milter.server import default_workers  # noqa: E402

ph = mr.ph
DOCS_PLOT = mr.REPO / "docs" / "performance-milter.png"
IMPLS = ("opendkim", "mailseal", "dkimpy")


@dataclass(frozen=True)
class Plan:
    reps: int  # timed runs per figure (median reported)
    sessions: int  # milter connections / SMTP sessions, as BASELINES.md's smtp-source -s 20
    sign_2k: int  # messages per milter-level run
    verify_2k: int
    sign_200k: int
    dkimpy_share: float  # dkimpy-milter is ~10x slower: fewer messages, same shape
    sweep: tuple[int, ...]
    sweep_per_connection: int  # messages per connection in a sweep run (capped)
    sweep_cap: int
    sweep_protocols: tuple[int, ...]
    protocols: tuple[int, ...]
    e2e_2k: int
    e2e_200k: int
    e2e_verify: int
    e2e_protocols: tuple[int, ...]
    e2e_200k_verify: bool = False


FULL = Plan(
    reps=3,
    sessions=20,
    sign_2k=2000,
    verify_2k=2000,
    sign_200k=300,
    dkimpy_share=0.2,
    sweep=(1, 2, 4, 8, 16, 32),
    sweep_per_connection=150,
    sweep_cap=2000,
    sweep_protocols=(2, 6),
    protocols=(2, 6),
    e2e_2k=2000,
    e2e_200k=300,
    e2e_verify=2000,
    e2e_protocols=(2, 6),
)
QUICK = Plan(
    reps=1,
    sessions=20,
    sign_2k=400,
    verify_2k=400,
    sign_200k=60,
    dkimpy_share=0.25,
    sweep=(1, 4, 16),
    sweep_per_connection=40,
    sweep_cap=400,
    sweep_protocols=(6,),
    protocols=(2,),
    e2e_2k=300,
    e2e_200k=0,
    e2e_verify=300,
    e2e_protocols=(2,),
)


@dataclass
class Results:
    machine: dict[str, str] = field(default_factory=dict)
    milter: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sweep: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    memory: dict[str, dict[str, float]] = field(default_factory=dict)
    e2e: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # mailseal instances by worker count ("1": "mailseal-1w", ...); "mailseal" runs
    # with the default count
    workers: dict[str, str] = field(default_factory=dict)

    def add(self, table: dict[str, list[dict[str, Any]]], key: str, row: dict[str, Any]) -> None:
        table.setdefault(key, []).append(row)


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# the machine


def _cmd(args: Sequence[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def describe_machine(dkimpy_reason: str | None) -> dict[str, str]:
    import cryptography
    from cryptography.hazmat.backends.openssl import backend

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    opendkim = _cmd(["opendkim", "-V"]).splitlines()
    dk_version = "not available: " + dkimpy_reason if dkimpy_reason else _pip_version()
    return {
        "cpu": f"{cpu}, {cpus()} cores",
        "memory": f"{int(mem) // 1024} MiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cryptography": f"{cryptography.__version__} ({backend.openssl_version_text()})",
        "opendkim": " ".join(s.strip() for s in opendkim[:2]),
        "postfix": _cmd(["/usr/sbin/postconf", "-dh", "mail_version"]),
        "dkimpy-milter": dk_version,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def _pip_version() -> str:
    pip = Path(mr.DKIMPY_MILTER).parent / "pip"
    out = _cmd([str(pip), "list", "--disable-pip-version-check"])
    found = re.findall(r"^(dkimpy-milter|pymilter|dkimpy)\s+(\S+)", out, re.M)
    return ", ".join(f"{n} {v}" for n, v in found) or "?"


# --------------------------------------------------------------------------
# checking what was delivered


def check_dumps(
    files: Sequence[Path], mode: str, record: str, sample: int, rng: random.Random
) -> list[str]:
    """Every delivered message carries our signature (sign) or a dkim=pass result for
    our domain (verify); a sample of signatures also verifies with dkimpy."""
    problems: list[str] = []
    for f in files:
        with f.open("rb") as fh:
            head = fh.read(64 * 1024)
        end = head.find(b"\n\n")
        block = (head if end < 0 else head[: end + 1]).replace(b"\n", b"\r\n")
        fields = split_fields(block[:-2] if block.endswith(b"\r\n") else block)
        if mode == "sign":
            sigs = [x for x in fields if x.lname == "dkim-signature"]
            if not any(b"d=" + mr.DOMAIN.encode() in x.value.replace(b"\r\n", b"") for x in sigs):
                problems.append(f"{f.name}: no DKIM-Signature with d={mr.DOMAIN}")
        else:
            results = [
                r
                for x in fields
                if x.lname == "authentication-results"
                for r in dkim_results(x.value)
            ]
            if ("pass", mr.DOMAIN) not in results:
                problems.append(f"{f.name}: no dkim=pass for {mr.DOMAIN} ({results})")
    if mode == "sign" and files:

        def txt(name: bytes, timeout: int = 5) -> bytes:
            return (
                record.encode() if name.startswith(f"{mr.SELECTOR}._domainkey.".encode()) else b""
            )

        for f in rng.sample(list(files), min(sample, len(files))):
            msg = f.read_bytes().replace(b"\n", b"\r\n")
            if not dkimpy.verify(msg, dnsfunc=txt, minkey=1024):
                problems.append(f"{f.name}: dkimpy does not verify the signature")
    return problems[:5] + ([f"... {len(problems) - 5} more"] if len(problems) > 5 else [])


# --------------------------------------------------------------------------
# the sections


class Runner:
    def __init__(
        self, plan: Plan, rig: mr.Rig, results: Results, deadline: float, impls: Sequence[str]
    ) -> None:
        self.plan = plan
        self.rig = rig
        self.results = results
        self.deadline = deadline
        self.impls = list(impls)
        self.key_pem = rig.base / "bench-key.pem"
        self.key_pem.write_bytes(rig.key.pem.read_bytes())
        self.key_pem.chmod(0o600)
        self.sign: dict[str, ph.Milter] = {}
        self.verify: dict[str, ph.Milter] = {}
        self.rng = random.Random(7)

    def out_of_time(self, what: str) -> bool:
        if time.monotonic() > self.deadline:
            self.results.skipped.append(f"{what}: time budget used up")
            log(f"skipping {what}: time budget used up")
            return True
        return False

    def start_milters(self) -> None:
        for impl in self.impls:
            log(f"starting {mr.LABELS[impl]} (sign and verify set-ups)")
            self.sign[impl] = self.rig.milter(impl, f"{impl}-sign")
            self.verify[impl] = self.rig.milter(impl, f"{impl}-verify", verify=True)
        if "mailseal" in self.impls:  # the worker scaling: one worker, and one per core
            default = default_workers()
            for n in sorted({1, cpus()}):
                name = "mailseal" if n == default else f"mailseal-{n}w"
                if name != "mailseal":
                    self.sign[name] = self.rig.milter(
                        "mailseal", name, extra=(f"MailsealWorkers {n}",)
                    )
                self.results.workers[str(n)] = name

    def _share(self, impl: str, n: int) -> int:
        return max(20, int(n * self.plan.dkimpy_share)) if impl == "dkimpy" else n

    def _order(self, rep: int, items: Sequence[str]) -> list[str]:
        k = rep % len(items)
        return list(items[k:]) + list(items[:k])  # a different one goes first each rep

    def _bench(
        self,
        impl: str,
        m: ph.Milter,
        *,
        mode: str,
        size: str,
        messages: int,
        concurrency: int,
        protocol: int,
    ) -> mr.MilterRun | None:
        try:
            run = mr.bench_run(
                m,
                mode=mode,
                size=size,
                messages=messages,
                concurrency=concurrency,
                protocol=protocol,
                key_pem=self.key_pem,
            )
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            self.results.problems.append(f"{impl} {mode} {size} p{protocol}: {exc}")
            log(f"  {impl}: FAILED {exc}")
            return None
        if run.errors:
            self.results.problems.append(
                f"{impl} {mode} {size} p{protocol} c{concurrency}: {run.errors} errors "
                f"{run.summary['error_kinds']}"
            )
        return run

    def milter_level(self) -> None:
        plan = self.plan
        tests = (
            ("sign", "2k", plan.sign_2k),
            ("verify", "2k", plan.verify_2k),
            ("sign", "200k", plan.sign_200k),
        )
        for protocol in plan.protocols:
            for rep in range(plan.reps):
                if self.out_of_time(f"milter level p{protocol} run {rep + 1}"):
                    return
                for mode, size, n in tests:
                    for impl in self._order(rep, self.impls):
                        m = self.sign[impl]
                        run = self._bench(
                            impl,
                            m,
                            mode=mode,
                            size=size,
                            messages=self._share(impl, n),
                            concurrency=plan.sessions,
                            protocol=protocol,
                        )
                        if run is None:
                            continue
                        key = f"{mode} {size} p{protocol}|{impl}"
                        self.results.add(
                            self.results.milter,
                            key,
                            {
                                "rate": run.rate,
                                "p99": run.p99,
                                "cpu_ms": run.cpu_ms_per_msg,
                                "errors": run.errors,
                                "messages": run.summary["sent"],
                            },
                        )
                        log(
                            f"  p{protocol} {mode} {size} {mr.LABELS[impl]:>13}: "
                            f"{run.rate:8.1f} msg/s  p99 {run.p99:7.2f} ms  "
                            f"cpu {run.cpu_ms_per_msg:6.2f} ms/msg  errors {run.errors}"
                        )

    def sweep(self) -> None:
        plan = self.plan
        names = [*self.impls, *_variants(self.results)]
        for protocol in plan.sweep_protocols:
            for rep in range(plan.reps):
                if self.out_of_time(f"concurrency sweep p{protocol} run {rep + 1}"):
                    return
                for c in plan.sweep:
                    # OpenDKIM and dkimpy-milter wait ~45 ms per message per connection
                    # (see the report): a third of the messages takes as long
                    n = min(plan.sweep_cap, plan.sweep_per_connection * c)
                    for name in self._order(rep, names):
                        impl = "mailseal" if name.startswith("mailseal") else name
                        count = n if impl == "mailseal" else max(20, n // 3)
                        run = self._bench(
                            name,
                            self.sign[name],
                            mode="sign",
                            size="2k",
                            messages=count,
                            concurrency=c,
                            protocol=protocol,
                        )
                        if run is None:
                            continue
                        self.results.add(
                            self.results.sweep,
                            f"p{protocol} {c}|{name}",
                            {
                                "rate": run.rate,
                                "p99": run.p99,
                                "cpu_ms": run.cpu_ms_per_msg,
                                "client_cpu_ms": run.summary["client_cpu_ms"],
                                "errors": run.errors,
                            },
                        )
                        log(
                            f"  sweep p{protocol} c={c:<3} {name:>13}: {run.rate:8.1f} msg/s  "
                            f"p99 {run.p99:7.2f} ms"
                        )

    def memory(self) -> None:
        for impl in self.impls:
            if self.out_of_time(f"memory {impl}"):
                return
            m = self.sign[impl]
            assert m.proc is not None
            workers_only = impl == "mailseal"
            mr.reset_peak_rss(m.proc.pid)
            small = self._bench(
                impl,
                m,
                mode="sign",
                size="2k",
                messages=self._share(impl, 400),
                concurrency=8,
                protocol=2,
            )
            peak_small = mr.peak_rss_mib(m.proc.pid, workers_only)
            mr.reset_peak_rss(m.proc.pid)
            big = self._bench(
                impl, m, mode="sign", size="50m", messages=1, concurrency=1, protocol=2
            )
            peak_big = mr.peak_rss_mib(m.proc.pid, workers_only)
            row = {
                "peak_2k_mib": round(peak_small, 1),
                "peak_50m_mib": round(peak_big, 1),
                "seconds_50m": big.summary["seconds"] if big else float("nan"),
                "ok_50m": bool(big and not big.errors and small and not small.errors),
            }
            self.results.memory[impl] = row
            log(f"  memory {mr.LABELS[impl]:>13}: {row}")

    def e2e(self) -> None:
        plan = self.plan
        base = self.rig.base
        files = self._message_files(base)
        for protocol in plan.e2e_protocols:
            if self.out_of_time(f"end to end p{protocol}"):
                return
            sink = mr.Sink(base / f"e2e-p{protocol}")
            pf = ph.PostfixInstance(
                sink.port,
                {
                    "milter_protocol": str(protocol),
                    "milter_default_action": "tempfail",
                    "smtpd_milters": "",
                    "non_smtpd_milters": "",
                },
                base=ph.scratch_base("mailseal-bench-postfix-"),
            )
            listeners = {"none": pf.port("default")}
            for impl in self.impls:
                pf.add_listener(f"{impl}-sign", {"smtpd_milters": self.sign[impl].socket_spec})
                pf.add_listener(f"{impl}-verify", {"smtpd_milters": self.verify[impl].socket_spec})
                listeners[impl] = 1
            try:
                log(f"starting a private Postfix (milter_protocol = {protocol})")
                pf.start()
                self._e2e_runs(pf, sink, files, protocol)
            finally:
                pf.cleanup()
                sink.stop()

    def _message_files(self, base: Path) -> dict[str, Path]:
        key = load_private_key(self.key_pem.read_bytes())
        spec = SignerSpec(
            key, mr.DOMAIN, mr.SELECTOR, header_canon=Canon.RELAXED, body_canon=Canon.SIMPLE
        )
        out = {}
        for size in ("2k", "200k", "50m"):
            raw = raw_message(make_message(size, mr.DOMAIN, mr.SENDER))
            out[size] = mr.write_lf(base / f"msg-{size}.eml", raw)
            if size == "2k":
                signed = b"".join(f + b"\r\n" for f in sign_message(raw, [spec], int(time.time())))
                out["2k-signed"] = mr.write_lf(base / "msg-2k-signed.eml", signed + raw)
        return out

    def _e2e_once(
        self,
        pf: ph.PostfixInstance,
        sink: mr.Sink,
        listener: str,
        file: Path,
        n: int,
        milter: ph.Milter | None,
        mode: str,
        key: str,
    ) -> None:
        run = mr.e2e_run(
            pf, listener, sink, file, messages=n, sessions=self.plan.sessions, milter=milter
        )
        problems = list(run.problems)
        if milter is not None and run.delivered:
            problems += check_dumps(sink.files(), mode, self.rig.record, 20, self.rng)
        if not mr.wait_queue_empty(pf, 60):
            problems.append("queue not empty after the run")
        if problems:
            self.results.problems.append(f"e2e {key}: {problems}")
        self.results.add(
            self.results.e2e,
            key,
            {
                "rate": run.rate,
                "cpu_ms": run.cpu_ms_per_msg,
                "delivered": run.delivered,
                "accept_rate": n / run.accept_seconds if run.accept_seconds else 0.0,
                "seconds": run.seconds,
                "errors": len(problems),
            },
        )
        cpu = f"{run.cpu_ms_per_msg:6.2f}" if run.cpu_ms_per_msg is not None else "     -"
        log(
            f"  e2e {key:<34} {run.rate:8.1f} msg/s  cpu {cpu} ms/msg  "
            f"{run.delivered}/{n} delivered{'  PROBLEMS ' + str(problems) if problems else ''}"
        )
        sink.clear()

    def _e2e_runs(
        self, pf: ph.PostfixInstance, sink: mr.Sink, files: dict[str, Path], protocol: int
    ) -> None:
        plan = self.plan
        tests = [("sign", "2k", files["2k"], plan.e2e_2k)]
        if plan.e2e_200k:
            tests.append(("sign", "200k", files["200k"], plan.e2e_200k))
        if plan.e2e_verify and protocol == plan.e2e_protocols[0]:
            tests.append(("verify", "2k", files["2k-signed"], plan.e2e_verify))
        for rep in range(plan.reps):
            if self.out_of_time(f"end to end p{protocol} run {rep + 1}"):
                return
            self._e2e_once(
                pf,
                sink,
                "default",
                files["2k"],
                plan.e2e_2k,
                None,
                "sign",
                f"sign 2k p{protocol}|none",
            )
            for mode, size, file, n in tests:
                for impl in self._order(rep, self.impls):
                    milter = (self.sign if mode == "sign" else self.verify)[impl]
                    self._e2e_once(
                        pf,
                        sink,
                        f"{impl}-{mode}",
                        file,
                        self._share(impl, n),
                        milter,
                        mode,
                        f"{mode} {size} p{protocol}|{impl}",
                    )
        if protocol != plan.e2e_protocols[0]:
            return
        for impl in self.impls:  # one 50 MB message each, for memory
            if self.out_of_time(f"end to end 50 MB {impl}"):
                return
            milter = self.sign[impl]
            assert milter.proc is not None
            mr.reset_peak_rss(milter.proc.pid)
            self._e2e_once(
                pf,
                sink,
                f"{impl}-sign",
                files["50m"],
                1,
                milter,
                "sign",
                f"sign 50m p{protocol}|{impl}",
            )
            peak = mr.peak_rss_mib(milter.proc.pid, impl == "mailseal")
            self.results.memory.setdefault(impl, {})["peak_50m_e2e_mib"] = round(peak, 1)
            log(f"  e2e 50 MB {mr.LABELS[impl]}: peak RSS per worker {peak:.1f} MiB")


# --------------------------------------------------------------------------
# report


def med(rows: list[dict[str, Any]] | None, field_name: str) -> float:
    values = [r[field_name] for r in rows or [] if r.get(field_name) is not None]
    return mr.median(values)


def ratio(a: float, b: float) -> float:
    return a / b if b and b == b and a == a else float("nan")


def fmt(x: float, digits: int = 1) -> str:
    return "-" if x != x else f"{x:,.{digits}f}"


def report(
    res: Results, plan: Plan, impls: Sequence[str]
) -> tuple[str, list[tuple[str, bool, str]]]:
    lines: list[str] = []
    m = res.machine
    lines.append(
        f"Machine: {m.get('cpu')}, {m.get('memory')} RAM, Linux {m.get('kernel')}; "
        f"Python {m.get('python')}, cryptography {m.get('cryptography')}; "
        f"{m.get('opendkim')}; Postfix {m.get('postfix')}; "
        f"dkimpy-milter: {m.get('dkimpy-milter')}. {m.get('date')}."
    )
    lines.append(f"Medians of {plan.reps} run(s); ratios are mailseal / OpenDKIM from this run.")
    lines.append("")
    lines.append(
        f"Milter level (`mailseal bench`, {plan.sessions} connections, RSA-2048, relaxed/simple):"
    )
    lines.append("")
    lines.append("| test | milter | msgs/s | p99 ms | CPU ms/msg | msgs/s ratio | CPU ratio |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    tests = sorted({k.split("|")[0] for k in res.milter}, key=_test_order)
    for t in tests:
        od = res.milter.get(f"{t}|opendkim")
        for impl in impls:
            rows = res.milter.get(f"{t}|{impl}")
            if not rows:
                continue
            r_rate = ratio(med(rows, "rate"), med(od, "rate")) if impl != "opendkim" else None
            r_cpu = ratio(med(rows, "cpu_ms"), med(od, "cpu_ms")) if impl != "opendkim" else None
            lines.append(
                f"| {t} | {mr.LABELS[impl]} | {fmt(med(rows, 'rate'))} | "
                f"{fmt(med(rows, 'p99'), 2)} | {fmt(med(rows, 'cpu_ms'), 2)} | "
                f"{'' if r_rate is None else fmt(r_rate, 2) + 'x'} | "
                f"{'' if r_cpu is None else fmt(r_cpu, 2) + 'x'} |"
            )
    lines.append("")
    if res.e2e:
        lines.append(
            f"End to end (smtp-source -s {plan.sessions} -> Postfix -> milter -> "
            "smtp-sink, queue on tmpfs):"
        )
        lines.append("")
        lines.append("| test | milter | msgs/s | CPU ms/msg | msgs/s ratio | CPU ratio |")
        lines.append("|---|---|---:|---:|---:|---:|")
        for t in sorted({k.split("|")[0] for k in res.e2e}, key=_test_order):
            od = res.e2e.get(f"{t}|opendkim")
            for impl in ("none", *impls):
                rows = res.e2e.get(f"{t}|{impl}")
                if not rows:
                    continue
                label = "Postfix alone" if impl == "none" else mr.LABELS[impl]
                if impl == "mailseal" or impl == "dkimpy":
                    rr = fmt(ratio(med(rows, "rate"), med(od, "rate")), 2) + "x"
                    rc = fmt(ratio(med(rows, "cpu_ms"), med(od, "cpu_ms")), 2) + "x"
                else:
                    rr = rc = ""
                cpu = fmt(med(rows, "cpu_ms"), 2) if impl != "none" else "-"
                rate_digits = 2 if "50m" in t else 1
                lines.append(
                    f"| {t} | {label} | {fmt(med(rows, 'rate'), rate_digits)} | {cpu} | "
                    f"{rr} | {rc} |"
                )
        lines.append("")
    if res.memory:
        lines.append("Peak RSS per worker (VmHWM, MiB; reset before each measurement):")
        lines.append("")
        lines.append(
            "| milter | 2 KB messages | one 50 MB message (milter level) | "
            "one 50 MB message (through Postfix) |"
        )
        lines.append("|---|---:|---:|---:|")
        for impl in impls:
            row = res.memory.get(impl, {})
            lines.append(
                f"| {mr.LABELS[impl]} | {fmt(row.get('peak_2k_mib', float('nan')))} | "
                f"{fmt(row.get('peak_50m_mib', float('nan')))} | "
                f"{fmt(row.get('peak_50m_e2e_mib', float('nan')))} |"
            )
        lines.append("")
    if res.sweep:
        names = [
            n for n in (*impls, *_variants(res)) if any(k.endswith(f"|{n}") for k in res.sweep)
        ]
        for protocol in plan.sweep_protocols:
            lines.append(
                f"Signing throughput (msgs/s) against concurrency, 2 KB, "
                f"milter_protocol {protocol}:"
            )
            lines.append("")
            lines.append("| connections | " + " | ".join(_sweep_label(n) for n in names) + " |")
            lines.append("|---:|" + "---:|" * len(names))
            for c in plan.sweep:
                cells = [fmt(med(res.sweep.get(f"p{protocol} {c}|{n}"), "rate")) for n in names]
                lines.append(f"| {c} | " + " | ".join(cells) + " |")
            lines.append("")
    targets = evaluate(res, plan)
    lines.append("Targets:")
    lines.append("")
    for name, ok, detail in targets:
        lines.append(f"- {'PASS' if ok else 'FAIL'}: {name}: {detail}")
    if res.problems:
        lines.append("")
        lines.append("Problems (runs with errors count as such):")
        lines += [f"- {p}" for p in res.problems]
    if res.skipped:
        lines.append("")
        lines += [f"- skipped: {s}" for s in res.skipped]
    return "\n".join(lines), targets


def _variants(res: Results) -> list[str]:
    """The extra mailseal instances (other worker counts than the default)."""
    return [n for n in res.workers.values() if n != "mailseal"]


def _workers(n: int) -> str:
    return f"{n} worker{'s' if n != 1 else ''}"


def _sweep_label(name: str) -> str:
    if name == "mailseal":
        return f"mailseal ({_workers(default_workers())}, the default)"
    if name.startswith("mailseal-"):
        return f"mailseal, {_workers(int(name[len('mailseal-') : -1]))}"
    return mr.LABELS[name]


def _test_order(t: str) -> tuple[int, int, str]:
    mode, size, proto = t.split()
    sizes = {"2k": 0, "200k": 1, "50m": 2}
    return (int(proto[1:]), {"verify": 10}.get(mode, 0) + sizes.get(size, 3), t)


def evaluate(res: Results, plan: Plan) -> list[tuple[str, bool, str]]:
    out: list[tuple[str, bool, str]] = []

    def pair(table: dict[str, list[dict[str, Any]]], test: str, f: str) -> tuple[float, float]:
        return med(table.get(f"{test}|mailseal"), f), med(table.get(f"{test}|opendkim"), f)

    def check(
        name: str,
        table: dict[str, list[dict[str, Any]]],
        tests: list[str],
        f: str,
        good: Callable[[float], bool],
        want: str,
    ) -> None:
        parts, oks = [], []
        for t in tests:
            ms, od = pair(table, t, f)
            r = ratio(ms, od)
            if r != r:
                continue
            parts.append(f"{t} {r:.2f}x")
            oks.append(good(r))
        if parts:
            out.append((f"{name} ({want})", all(oks), ", ".join(parts)))

    ps = [f"p{p}" for p in plan.protocols]
    eps = [f"p{p}" for p in plan.e2e_protocols]
    check(
        "signing msgs/s, milter level",
        res.milter,
        [f"sign 2k {p}" for p in ps],
        "rate",
        lambda r: r >= 1.0,
        ">= 1.0x OpenDKIM, aim 1.5x",
    )
    check(
        "signing msgs/s, end to end",
        res.e2e,
        [f"sign 2k {p}" for p in eps],
        "rate",
        lambda r: r >= 1.0,
        ">= 1.0x",
    )
    check(
        "CPU per message, milter level",
        res.milter,
        [f"{m} 2k {p}" for p in ps for m in ("sign", "verify")],
        "cpu_ms",
        lambda r: r <= 1.0,
        "<= OpenDKIM's",
    )
    check(
        "CPU per message, end to end",
        res.e2e,
        [f"{m} 2k {p}" for p in eps for m in ("sign", "verify")],
        "cpu_ms",
        lambda r: r <= 1.0,
        "<= OpenDKIM's",
    )
    check(
        "verify msgs/s",
        res.milter,
        [f"verify 2k {p}" for p in ps],
        "rate",
        lambda r: r >= 1.0,
        ">= 1.0x, milter level",
    )
    check(
        "verify msgs/s",
        res.e2e,
        [f"verify 2k {p}" for p in eps],
        "rate",
        lambda r: r >= 1.0,
        ">= 1.0x, end to end",
    )
    mem = res.memory.get("mailseal", {})
    peaks = [mem[k] for k in ("peak_50m_mib", "peak_50m_e2e_mib") if k in mem]
    if peaks:
        out.append(
            (
                "peak RSS per worker with a 50 MB message (< 100 MB)",
                max(peaks) < 100,
                f"{max(peaks):.1f} MiB (milter level {mem.get('peak_50m_mib', '-')}, "
                f"through Postfix {mem.get('peak_50m_e2e_mib', '-')})",
            )
        )
    cores = cpus()
    one_name, many_name = res.workers.get("1"), res.workers.get(str(cores))
    for protocol in plan.sweep_protocols:
        parts, oks = [], []
        for c in plan.sweep:
            if c < cores or one_name is None or many_name in (None, one_name):
                continue
            two = med(res.sweep.get(f"p{protocol} {c}|{many_name}"), "rate")
            one = med(res.sweep.get(f"p{protocol} {c}|{one_name}"), "rate")
            if two == two and one == one:
                # judged from four connections per worker: with protocol 2 a message is
                # a dozen round trips, and a worker with fewer connections than that
                # waits for the MTA (here the load generator) more than it works
                judged = c >= 4 * cores
                parts.append(f"c={c}: {two / one:.2f}x" + ("" if judged else " (not judged)"))
                if judged:
                    oks.append(two / one >= 1.15)
        if oks:
            out.append(
                (
                    f"throughput grows with workers, p{protocol} ({cores} workers, one per "
                    "core, against one; >= 1.15x from 4 connections per worker up)",
                    all(oks),
                    ", ".join(parts),
                )
            )
    return out


def plot(res: Results, plan: Plan, impls: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = [p for p in plan.sweep_protocols if any(k.startswith(f"p{p} ") for k in res.sweep)]
    fig, axes = plt.subplots(
        1, len(protocols), figsize=(6.2 * len(protocols), 4.4), dpi=110, squeeze=False
    )
    styles = {
        "opendkim": ("#c0392b", "o", "-"),
        "mailseal": ("#1f6fb2", "s", "-"),
        "dkimpy": ("#7f8c8d", "^", "--"),
    }
    for name in _variants(res):
        styles[name] = ("#1f6fb2", "D" if name != "mailseal-1w" else "s", ":")
    for ax, protocol in zip(axes[0], protocols, strict=True):
        for name in (*impls, *_variants(res)):
            xs = [c for c in plan.sweep if res.sweep.get(f"p{protocol} {c}|{name}")]
            if not xs:
                continue
            ys = [med(res.sweep[f"p{protocol} {c}|{name}"], "rate") for c in xs]
            color, marker, line = styles[name]
            ax.plot(xs, ys, marker=marker, linestyle=line, color=color, label=_sweep_label(name))
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(plan.sweep))
        ax.set_xticklabels([str(c) for c in plan.sweep])
        ax.set_xlabel("milter connections (mailseal bench --concurrency)")
        ax.set_ylabel("signed messages/s (2 KB, RSA-2048)")
        ax.set_title(f"milter_protocol {protocol}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Milter signing throughput against concurrency ({cpus()} cores, "
        f"load generator on the same cores; medians of {plan.reps})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer and shorter runs (~2 minutes)")
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    ap.add_argument("--plot", type=Path, help=f"PNG of the sweep (full run: {DOCS_PLOT})")
    ap.add_argument("--no-dkimpy", action="store_true", help="leave dkimpy-milter out")
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="skip what is left after this long (default 25, quick 4)",
    )
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_milter.py needs root (private Postfix, nsd on port 53)", file=sys.stderr)
        return 2
    plan = QUICK if args.quick else FULL
    budget = args.max_minutes or (4.0 if args.quick else 25.0)
    started = time.monotonic()
    deadline = started + budget * 60
    reason = "left out (--no-dkimpy)" if args.no_dkimpy else mr.dkimpy_usable()
    impls = [i for i in IMPLS if i != "dkimpy" or reason is None]
    plot_path = args.plot or (None if args.quick else DOCS_PLOT)
    results = Results(machine=describe_machine(reason))

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        with mr.rig() as rig:
            runner = Runner(plan, rig, results, deadline, impls)
            runner.start_milters()
            log("milter level")
            runner.milter_level()
            log("throughput against concurrency")
            runner.sweep()
            log("memory")
            runner.memory()
            log("end to end")
            runner.e2e()
    except KeyboardInterrupt:
        results.skipped.append("interrupted")
    text, targets = report(results, plan, impls)
    print(text)
    minutes = (time.monotonic() - started) / 60
    print(f"\n(run took {minutes:.1f} minutes; {'quick' if args.quick else 'full'} mode)")
    if plot_path is not None and results.sweep:
        plot(results, plan, impls, plot_path)
        print(f"plot: {plot_path}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"plan": plan.__dict__, **results.__dict__, "targets": targets, "minutes": minutes},
                indent=1,
            )
        )
    return 1 if results.problems else 0


if __name__ == "__main__":
    sys.exit(main())
