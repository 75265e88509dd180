"""Find, start and stop llama.cpp's llama-server for the tests (built by tests/llama_server/build.sh)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

VERSION = "0.3.36"
BUILD_HINT = "build it once with `bash tests/llama_server/build.sh` (about 10 minutes; cached), or set LLAMA_SERVER"


def cached_binary() -> Path:
    """Where build.sh caches the binary; keep in step with it."""
    root = os.environ.get("THERAPIST_EVALUATOR_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(base) / "therapist-evaluator")
    return Path(root) / f"llama-server-{VERSION}" / "llama-server"


def find_binary() -> Path | None:
    """$LLAMA_SERVER if set (it must then exist), else the cached build, else None."""
    named = os.environ.get("LLAMA_SERVER")
    path = Path(named) if named else cached_binary()
    return path if path.is_file() and os.access(path, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """One llama-server process on 127.0.0.1; its output goes to `log` so a failed start can say why."""

    def __init__(self, binary: Path, model: Path, log: Path, *, context: int, slots: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        self.log = log
        self.args = [
            str(binary),
            *("--model", str(model), "--host", "127.0.0.1", "--port", str(self.port)),
            *("--ctx-size", str(context), "--parallel", str(slots), "--no-ui"),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> LlamaServer:
        """Start the server and return once /health says the model is loaded."""
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._healthy():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama-server was not healthy after {timeout_s:.0f} s:\n{self.log_tail()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as reply:
                return reply.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
