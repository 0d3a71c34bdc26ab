"""Helpers of the networked tests: free loopback ports, and Python child processes that are
ended by pid whatever happens, with every wait on them bounded."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import rhizo


def free_ports(count: int) -> list[int]:
    """`count` distinct ports the OS reports free on 127.0.0.1 now (all held open until every
    one is picked, so none is handed out twice)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Child:
    """A Python child process whose output lines are read on a thread, so that every wait for
    one is bounded."""

    def __init__(self, args: Sequence[str], cwd: str | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self.errors: list[str] = []
        self.pumps = [
            threading.Thread(target=self._pump, daemon=True),
            threading.Thread(target=self._pump_errors, daemon=True),
        ]
        for pump in self.pumps:
            pump.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_errors(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    def line(self, timeout: float = 60.0) -> str:
        """The next line the child prints; fails after `timeout` seconds or at its end."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"child {self.pid} printed nothing for {timeout} s") from None
        if line is None:
            raise AssertionError(f"child {self.pid} ended: {self.stderr()}")
        self.output.append(line)
        return line

    def line_starting(self, prefix: str, timeout: float = 60.0) -> str:
        """The first next line that starts with `prefix` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(timeout=max(0.01, deadline - time.monotonic()))
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def stderr(self) -> str:
        return "".join(self.errors)

    def kill(self) -> None:
        """SIGKILL, by pid; reaps it and closes its pipes."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        for pump in self.pumps:
            pump.join(timeout=30)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout=timeout)


@contextmanager
def children(*argss: Sequence[str], cwd: str | None = None) -> Iterator[list[Child]]:
    """Starts one child per argument list; every one is SIGKILLed by pid on the way out, even
    when the block failed."""
    started: list[Child] = []
    try:
        for args in argss:
            started.append(Child(args, cwd=cwd))
        yield started
    finally:
        for child in started:
            child.kill()


def wait_until(predicate, timeout: float = 30.0, every: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    """Polls `predicate` until it is true; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(every)


def certificates(directory: Path, nodes: list[str], clients: list[str]) -> None:
    """A cluster CA in `directory` (`ca.crt`), and for each name a certificate and key
    (`NAME.crt`, `NAME.key`): nodes' good for both ends of a connection, clients' for client
    authentication only — what `rhizo tls` writes, through the package's own functions."""
    rhizo.tls_ca(directory, cluster="rhizo test")
    for name in nodes:
        rhizo.tls_node(directory, name)
    for name in clients:
        rhizo.tls_client(directory, name)
