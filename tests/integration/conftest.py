"""Fixtures that start the server under test (and a reference memcached).

The server under test is the binary named by the environment variable
STRATA_BIN.  It is started on 127.0.0.1 with a free port (or only on a unix
socket in a private tmp dir), with memcached-style flags
(-p -l -m -t -c -I -s -a -A).  The same tests run against Debian's memcached
1.6.18 (STRATA_BIN=/usr/bin/memcached); tests that check strata-only
behaviour are marked `strata_only` and are skipped for memcached.

Every process started here is stopped by PID at teardown (SIGTERM, wait,
then SIGKILL), also when the test fails.
"""

import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

REFERENCE_MEMCACHED = "/usr/bin/memcached"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def server_bin():
    path = os.environ.get("STRATA_BIN")
    if not path:
        raise pytest.UsageError(
            "set STRATA_BIN to the server binary under test, e.g. "
            "STRATA_BIN=build/proxy/strata or STRATA_BIN=/usr/bin/memcached")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        raise pytest.UsageError(f"STRATA_BIN={path} is not an executable file")
    return path


def bin_is_memcached(path):
    """True if the binary is a real memcached (not strata)."""
    return os.path.basename(path).startswith("memcached")


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=10, what=None):
    """Waits until something accepts connections on 127.0.0.1:port; fails
    the test (AssertionError) after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.time() < deadline, f"{what} did not start" if what else None
            time.sleep(0.05)


def rss_bytes(pid):
    """Resident set size of a process, from /proc/PID/status VmRSS."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Server:
    """One server process: host, port, pid, process, unix socket path."""

    def __init__(self, binary, memory_mb=64, threads=2, max_conns=None,
                 item_size=None, unix_socket=None, unix_mask=None,
                 enable_shutdown=False, extra_args=(), log_path=None,
                 start_timeout=None):
        self.binary = binary
        # Seconds to wait for the port to accept (default START_TIMEOUT_S);
        # longer for servers that rebuild an SSD index before listening.
        self.start_timeout = start_timeout or START_TIMEOUT_S
        self.is_memcached = bin_is_memcached(binary)
        self.host = "127.0.0.1"
        self.port = None
        self.unix_socket = unix_socket
        self.process = None
        self.log_path = log_path
        self._log = None
        self._opts = dict(memory_mb=memory_mb, threads=threads,
                          max_conns=max_conns, item_size=item_size,
                          unix_socket=unix_socket, unix_mask=unix_mask,
                          enable_shutdown=enable_shutdown,
                          extra_args=list(extra_args))

    @property
    def pid(self):
        return self.process.pid

    @property
    def address(self):
        return (self.host, self.port)

    def _argv(self, port):
        o = self._opts
        argv = [self.binary, "-p", str(port), "-l", self.host]
        if o["memory_mb"] is not None:
            argv += ["-m", str(o["memory_mb"])]
        if o["threads"] is not None:
            argv += ["-t", str(o["threads"])]
        if o["max_conns"] is not None:
            argv += ["-c", str(o["max_conns"])]
        if o["item_size"] is not None:
            argv += ["-I", str(o["item_size"])]
        if o["unix_socket"] is not None:
            argv += ["-s", o["unix_socket"]]
            if o["unix_mask"] is not None:
                argv += ["-a", o["unix_mask"]]
        if o["enable_shutdown"]:
            argv += ["-A"]
        if self.is_memcached:
            # No UDP; ascii only (strata speaks only the text protocol, and
            # the tests pin memcached's `-B ascii` behaviour); memcached
            # refuses to run as root without -u.
            argv += ["-U", "0", "-B", "ascii"]
            if os.geteuid() == 0:
                argv += ["-u", "root"]
        else:
            # strata serves metrics on 127.0.0.1:9150 by default; servers
            # running side by side each take a free port instead (a later
            # --metrics-listen in extra_args wins).
            argv += ["--metrics-listen", "127.0.0.1:0"]
            # ctest runs some files twice: once as configured (io_uring),
            # once with STRATA_NETWORK_IO=syscalls (the fallback path).
            if os.environ.get("STRATA_NETWORK_IO"):
                argv += ["--network-io", os.environ["STRATA_NETWORK_IO"]]
        argv += o["extra_args"]
        return argv

    def _ready(self):
        if self.unix_socket is not None and self.is_memcached:
            # memcached with -s listens only on the unix socket.
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = self.unix_socket
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = (self.host, self.port)
        s.settimeout(1.0)
        try:
            s.connect(target)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def start(self):
        last_error = None
        for _attempt in range(3):
            self.port = free_port()
            argv = self._argv(self.port)
            self._log = open(self.log_path, "ab") if self.log_path else \
                tempfile.TemporaryFile()
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=self._log,
                stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                if self._ready():
                    if self.unix_socket is not None and not self.is_memcached:
                        # strata listens on TCP and on the unix socket.
                        self._wait_unix(deadline)
                    self.argv = argv
                    return self
                time.sleep(0.02)
            exited = self.process.poll() is not None
            last_error = (f"{' '.join(argv)} did not start "
                          f"(exit={self.process.poll()}): {self.output()}")
            self.stop()
            self.close_log()
            if not exited:
                break  # alive but not accepting: retrying will not help
        raise RuntimeError(last_error)

    def _wait_unix(self, deadline):
        while time.monotonic() < deadline:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.unix_socket)
                return
            except OSError:
                time.sleep(0.02)
            finally:
                s.close()
        raise RuntimeError(f"unix socket {self.unix_socket} never accepted")

    def output(self):
        """What the server printed so far (stdout + stderr)."""
        if self._log is None:
            return ""
        try:
            self._log.flush()
            self._log.seek(0)
            return self._log.read().decode(errors="replace")[-4000:]
        except (OSError, ValueError):
            return ""

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
        """Stop by PID: `sig`, wait up to `timeout`, then SIGKILL.

        Returns the exit code (negative: killed by that signal)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout)
        return self.process.returncode

    def close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    def rss(self):
        return rss_bytes(self.pid)

    def connect(self, timeout=10.0):
        """A connected socket (TCP, or the unix socket for unix-only)."""
        if self.unix_socket is not None and self.is_memcached:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.unix_socket)
        else:
            s = socket.create_connection(self.address, timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def __repr__(self):
        return f"Server({self.binary} pid={self.process and self.pid} " \
               f"port={self.port})"


class _Factory:
    def __init__(self, binary, tmp_dir):
        self.binary = binary
        self.tmp_dir = tmp_dir
        self.servers = []

    def __call__(self, **kwargs):
        srv = Server(self.binary, **kwargs)
        self.servers.append(srv)
        return srv.start()

    def stop_all(self):
        for srv in reversed(self.servers):
            try:
                srv.stop()
            finally:
                srv.close_log()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "strata_only: behaviour that only strata must have "
        "(skipped when STRATA_BIN is memcached)")
    config.addinivalue_line(
        "markers", "rss_bound: asserts an RSS bound (skipped when "
        "STRATA_SANITIZED=1: ASan's shadow memory breaks any such bound)")


def pytest_collection_modifyitems(config, items):
    memcached = bin_is_memcached(server_bin())
    sanitized = os.environ.get("STRATA_SANITIZED") == "1"
    skip_strata = pytest.mark.skip(
        reason="strata-specific; STRATA_BIN is memcached")
    skip_rss = pytest.mark.skip(reason="RSS bound; sanitizer build")
    for item in items:
        if memcached and "strata_only" in item.keywords:
            item.add_marker(skip_strata)
        if sanitized and "rss_bound" in item.keywords:
            item.add_marker(skip_rss)


@pytest.fixture(scope="session")
def strata_bin():
    return server_bin()


@pytest.fixture(scope="session")
def is_memcached(strata_bin):
    return bin_is_memcached(strata_bin)


@pytest.fixture
def server_factory(strata_bin, tmp_path):
    """Starts servers under test: factory(memory_mb=64, threads=2,
    max_conns=None, item_size=None, unix_socket=None, unix_mask=None,
    enable_shutdown=False, extra_args=()).  All are stopped at teardown."""
    factory = _Factory(strata_bin, tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def memcached_factory(tmp_path):
    """Starts reference memcached 1.6.18 processes the same way."""
    if not os.access(REFERENCE_MEMCACHED, os.X_OK):
        pytest.skip(f"{REFERENCE_MEMCACHED} not installed")
    factory = _Factory(REFERENCE_MEMCACHED, tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


def _module_server(strata_bin, **kwargs):
    srv = Server(strata_bin, **kwargs)
    srv.start()
    return srv


@pytest.fixture(scope="module")
def server(strata_bin):
    """One server under test per test module: -m 64 -t 2 -I 2m."""
    srv = _module_server(strata_bin, memory_mb=64, threads=2, item_size="2m")
    try:
        yield srv
    finally:
        srv.stop()
        srv.close_log()


@pytest.fixture(scope="module")
def reference_memcached():
    """One reference memcached per test module: -m 64 -t 2 -I 2m."""
    if not os.access(REFERENCE_MEMCACHED, os.X_OK):
        pytest.skip(f"{REFERENCE_MEMCACHED} not installed")
    srv = _module_server(REFERENCE_MEMCACHED, memory_mb=64, threads=2,
                         item_size="2m")
    try:
        yield srv
    finally:
        srv.stop()
        srv.close_log()
