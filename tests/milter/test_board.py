"""The load board: connection counts shared by a parent and its forked workers, and the
even spread of connections it gives a running milter."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from mailseal.milter.board import FREE, OUT, LoadBoard


def test_slots_are_claimed_released_and_reused() -> None:
    board = LoadBoard(2)
    assert (board.claim(), board.claim(), board.claim()) == (0, 1, None)
    board.release(0)
    assert board.count(0) == FREE
    assert board.claim() == 0 and board.count(0) == 0


def test_least_busy_ignores_free_and_draining_slots() -> None:
    board = LoadBoard(4)
    a, b, c = board.claim(), board.claim(), board.claim()
    assert a is not None and b is not None and c is not None
    board.set(a, 3)
    board.set(b, 1)
    board.set(c, 2)
    assert board.least_busy(b) and not board.least_busy(a) and not board.least_busy(c)
    board.leave(b)  # b stops accepting: c is now the least busy
    assert board.count(b) == OUT
    assert board.least_busy(c) and not board.least_busy(a)
    board.set(a, 2)
    assert board.least_busy(a) and board.least_busy(c)  # ties: both may accept at once


def test_a_forked_worker_writes_what_the_parent_reads() -> None:
    board = LoadBoard(2)
    slot = board.claim()
    assert slot is not None
    pid = os.fork()
    if pid == 0:
        board.set(slot, 7)
        os._exit(0)
    os.waitpid(pid, 0)
    assert board.count(slot) == 7


def _sockets(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def test_connections_spread_evenly_over_workers(tmp_path: Path) -> None:
    """Eight idle connections opened one after another: two workers get four each, give
    or take one (without the board the first worker to wake took seven)."""
    import asyncio

    from mailseal.dkim.keys import KeyType, generate_key, private_pem
    from tests.milter.test_server import Milter, sign_once

    tmp_path.chmod(0o700)
    key = tmp_path / "key.private"
    key.write_bytes(private_pem(generate_key(KeyType.ED25519)))
    key.chmod(0o600)
    milter = Milter(tmp_path, workers=2)
    milter.start()
    conns: list[socket.socket] = []
    try:
        asyncio.run(sign_once(milter.spec))  # both workers up and serving
        deadline = time.monotonic() + 10
        while len(milter.worker_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = milter.worker_pids()
        assert len(workers) == 2
        time.sleep(0.2)
        before = {pid: _sockets(pid) for pid in workers}
        for _ in range(8):
            conns.append(socket.create_connection(("127.0.0.1", milter.port), timeout=5))
            time.sleep(0.02)  # as smtpd processes connect, one after another
        time.sleep(0.3)
        got = sorted(_sockets(pid) - before[pid] for pid in workers)
        assert sum(got) == 8, got
        assert got[1] - got[0] <= 2, got
    finally:
        for c in conns:
            c.close()
        if milter.proc is not None and milter.proc.poll() is None:
            milter.stop()


def test_a_draining_worker_stays_out_of_the_board(tmp_path: Path) -> None:
    """After SIGTERM (a reload) a worker no longer accepts: its slot says OUT, and the
    connections it still finishes do not put a count back."""
    import asyncio

    from mailseal.config.opendkim import load_config
    from mailseal.dkim.keys import KeyType, generate_key, private_pem
    from mailseal.milter.worker import Worker

    tmp_path.chmod(0o700)
    key = tmp_path / "key.private"
    key.write_bytes(private_pem(generate_key(KeyType.ED25519)))
    key.chmod(0o600)
    conf = tmp_path / "opendkim.conf"
    conf.write_text(f"Domain example.com\nSelector mail\nKeyFile {key}\nSyslog no\n")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    board = LoadBoard(2)
    slot = board.claim()
    other = board.claim()
    assert slot is not None and other is not None
    board.set(other, 5)

    async def scenario() -> tuple[int, int, int]:
        worker = Worker(listener, load_config(conf), None, board, slot)
        running = asyncio.create_task(worker.run())
        client = socket.create_connection(listener.getsockname(), timeout=5)
        for _ in range(200):
            if worker.connections:
                break
            await asyncio.sleep(0.01)
        serving = board.count(slot)
        worker.stopping.set()  # as SIGTERM does
        await asyncio.sleep(0.05)
        draining = board.count(slot)
        client.close()  # the MTA ends its session: the worker's last connection goes
        await asyncio.wait_for(running, 10)
        return serving, draining, board.count(slot)

    try:
        serving, draining, after = asyncio.run(scenario())
    finally:
        listener.close()
    assert (serving, draining, after) == (1, OUT, OUT)
    assert board.least_busy(other)  # the draining worker no longer counts


def test_a_connection_that_cannot_be_set_up_does_not_stop_accepting(tmp_path: Path) -> None:
    """Whatever goes wrong setting up one connection, the worker logs it, drops that
    connection and goes on accepting."""
    import asyncio

    from mailseal.config.opendkim import load_config
    from mailseal.dkim.keys import KeyType, generate_key, private_pem
    from mailseal.milter import worker as worker_module
    from mailseal.milter.worker import Worker

    tmp_path.chmod(0o700)
    key = tmp_path / "key.private"
    key.write_bytes(private_pem(generate_key(KeyType.ED25519)))
    key.chmod(0o600)
    conf = tmp_path / "opendkim.conf"
    conf.write_text(f"Domain example.com\nSelector mail\nKeyFile {key}\nSyslog no\n")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    real = worker_module.Connection
    calls = []

    def flaky(w: Worker) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("set-up failed")
        return real(w)

    async def scenario() -> tuple[bytes, int]:
        worker = Worker(listener, load_config(conf), None)
        worker_module.Connection = flaky  # type: ignore[assignment,misc]
        running = asyncio.create_task(worker.run())
        loop = asyncio.get_running_loop()
        first = socket.create_connection(listener.getsockname(), timeout=5)
        first.setblocking(False)
        gone = await asyncio.wait_for(loop.sock_recv(first, 1), 5)  # closed on us
        second = socket.create_connection(listener.getsockname(), timeout=5)
        for _ in range(200):
            if worker.connections:
                break
            await asyncio.sleep(0.01)
        served = len(worker.connections)
        second.close()
        first.close()
        worker.stopping.set()
        await asyncio.wait_for(running, 10)
        return gone, served

    try:
        gone, served = asyncio.run(scenario())
    finally:
        worker_module.Connection = real  # type: ignore[misc]
        listener.close()
    assert gone == b"" and served == 1 and len(calls) == 2


def test_a_worker_that_cannot_accept_exits_to_be_replaced(tmp_path: Path) -> None:
    import asyncio

    from mailseal.config.opendkim import load_config
    from mailseal.dkim.keys import KeyType, generate_key, private_pem
    from mailseal.milter.worker import Worker

    tmp_path.chmod(0o700)
    key = tmp_path / "key.private"
    key.write_bytes(private_pem(generate_key(KeyType.ED25519)))
    key.chmod(0o600)
    conf = tmp_path / "opendkim.conf"
    conf.write_text(f"Domain example.com\nSelector mail\nKeyFile {key}\nSyslog no\n")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)

    class Broken(Worker):
        async def _accept(self) -> None:
            raise RuntimeError("the listening socket went bad")

    async def scenario() -> bool:
        worker = Broken(listener, load_config(conf), None)
        await asyncio.wait_for(worker.run(), 10)  # returns: the parent will replace it
        return worker.stopping.is_set()

    try:
        assert asyncio.run(scenario())
    finally:
        listener.close()
