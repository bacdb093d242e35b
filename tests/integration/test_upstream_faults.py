"""The upstream pool under faults (issue 25), against real memcached 1.6.18
processes on 127.0.0.1: one server of three is killed, stopped with
SIGSTOP, or sits behind a relay (relay.py) that stalls, delays, drops its
idle connections or cuts a value in the middle.

In each case:
* the keys of the healthy servers keep working, from another client
  connection on the same strata worker (their latency is measured and
  asserted only loosely: tests never assert on time tightly);
* the bad server's requests fail (a get is a miss, a write SERVER_ERROR)
  within about the request timeout, and once it is marked down at once;
* the server is probed back after it recovers (upstream_servers_down
  returns to 0, its keys work again);
* no wrong value is ever returned: every get answers the value last
  stored for its key, or a miss.

strata runs with near_cache_ttl 0 (pure routing), so every get goes to the
pool, and one worker, so the healthy and the failing requests share one
loop. Every process is started on 127.0.0.1 on a free port and stopped by
PID.
"""

import os
import signal
import threading
import time

import pytest

import conftest
from conftest import REFERENCE_MEMCACHED, Server
from mcraw import Conn
from relay import Relay
from test_upstream import Strata, get, holders, request

pytestmark = pytest.mark.strata_only

REQUEST_TIMEOUT_S = 0.2
KEYS = [f"fault:{i}" for i in range(120)]


def value_of(key):
    return ("v-" + key).encode()


def start_memcached(port=None):
    srv = Server(REFERENCE_MEMCACHED, memory_mb=64, threads=1)
    if port is None:
        return srv.start()
    saved = conftest.free_port
    conftest.free_port = lambda: port  # the same port again (a restart)
    try:
        return srv.start()
    finally:
        conftest.free_port = saved


@pytest.fixture
def healthy():
    if not os.access(REFERENCE_MEMCACHED, os.X_OK):
        pytest.skip("no reference memcached")
    servers = []
    try:
        for _ in range(2):
            servers.append(start_memcached())
        yield servers
    finally:
        for s in servers:
            s.stop()
            s.close_log()


def start_strata(strata_bin, tmp_path, addrs, request_timeout="200ms", extra=(), threads=1,
                 **kw):
    """Strata before `addrs` with quick connects and probes (and `extra`
    lines in its upstream section)."""
    return Strata(strata_bin, str(tmp_path / "strata"), addrs, near_cache_ttl="0",
                  threads=threads, request_timeout=request_timeout, extra_upstream=[
                      "  connect_timeout: 100ms",
                      "  probe_interval: 50ms",
                      "  probe_interval_max: 500ms",
                  ] + list(extra), **kw)


def stop(st):
    """Stops strata; a sanitized build (TSan, ASan, UBSan) must not have
    reported anything into its log."""
    st.stop()
    with open(st.server.log_path, "rb") as f:
        out = f.read()
    for tool in (b"ThreadSanitizer", b"AddressSanitizer", b"runtime error"):
        assert tool not in out, out[-4000:]


def down_count(st):
    return int(st.stats()["upstream_servers_down"])


def wait_for(cond, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def p99(samples):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * 0.99))] if s else 0.0


class Load:
    """Gets of the healthy servers' keys in a thread, on a connection of
    its own, checking every value; latencies in seconds."""

    def __init__(self, st, keys):
        self.st, self.keys = st, keys
        self.latencies, self.errors = [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)

    def _run(self):
        c = self.st.conn()
        try:
            i = 0
            while not self._stop.is_set():
                key = self.keys[i % len(self.keys)]
                i += 1
                t0 = time.monotonic()
                v = get(c, key)
                self.latencies.append(time.monotonic() - t0)
                if v != value_of(key):
                    self.errors.append((key, v))
        except Exception as e:  # reported by the test
            self.errors.append(("exception", repr(e)))
        finally:
            c.close()


def start_pool(strata_bin, tmp_path, healthy, bad_addr, bad_server, **kw):
    """strata over the two healthy servers and `bad_addr`; every key stored
    through it. Returns (strata, healthy keys, bad keys)."""
    st = start_strata(strata_bin, tmp_path, [f"127.0.0.1:{s.port}" for s in healthy] +
                      [bad_addr], **kw)
    c = st.conn()
    try:
        for key in KEYS:
            assert request(c, b"set %s 0 0 %d\r\n%s\r\n" % (
                key.encode(), len(value_of(key)), value_of(key))) == b"STORED\r\n"
    finally:
        c.close()
    bad = [k for k in KEYS if holders([bad_server], k) == [0]]
    good = [k for k in KEYS if k not in bad]
    assert len(bad) > 10 and len(good) > 40, (len(bad), len(good))
    return st, good, bad


def baseline(st, good, n=300):
    c = st.conn()
    lat = []
    try:
        for i in range(n):
            key = good[i % len(good)]
            t0 = time.monotonic()
            assert get(c, key) == value_of(key)
            lat.append(time.monotonic() - t0)
    finally:
        c.close()
    return p99(lat)


def fail_phase(st, bad, seconds=1.5, expect_down=True):
    """Gets and sets of the bad server's keys while it is broken: each
    answers a miss / SERVER_ERROR (or, before the fault bites, the right
    value) within about the timeout. Returns the slowest answer (s)."""
    c = st.conn()
    slowest = 0.0
    try:
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            key = bad[i % len(bad)]
            i += 1
            t0 = time.monotonic()
            v = get(c, key)
            slowest = max(slowest, time.monotonic() - t0)
            assert v in (None, value_of(key)), (key, v)
            t0 = time.monotonic()
            r = request(c, b"set %s 0 0 %d\r\n%s\r\n" % (
                key.encode(), len(value_of(key)), value_of(key)))
            slowest = max(slowest, time.monotonic() - t0)
            assert r in (b"STORED\r\n", b"SERVER_ERROR upstream unavailable\r\n"), r
        if expect_down:
            assert down_count(st) == 1
    finally:
        c.close()
    return slowest


def recovered(st, bad):
    """Whether the bad server's keys work again (a set and its get)."""
    c = st.conn()
    try:
        key = bad[0]
        r = request(c, b"set %s 0 0 %d\r\n%s\r\n" % (
            key.encode(), len(value_of(key)), value_of(key)))
        return r == b"STORED\r\n" and get(c, key) == value_of(key)
    finally:
        c.close()


def scrape(port):
    """{series with labels: value} from strata's /metrics."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        body = r.read().decode()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, v = line.rsplit(" ", 1)
            out[name] = float(v)
    return out


def run_fault(st, good, bad, inject, heal, expect_down=True, while_down=None):
    base = baseline(st, good)
    with Load(st, good) as load:
        time.sleep(0.2)
        inject()
        slowest = fail_phase(st, bad, expect_down=expect_down)
        if while_down is not None:
            while_down()
        heal()
        t0 = time.monotonic()
        assert wait_for(lambda: recovered(st, bad), 20), "not probed back"
        recovery = time.monotonic() - t0
        assert wait_for(lambda: down_count(st) == 0, 5)
    assert not load.errors, load.errors[:5]
    assert len(load.latencies) > 50
    faulted = p99(load.latencies)
    # Loose: a healthy key never waits for the bad server (its timeout is
    # 200 ms; a stalled loop would show seconds).
    assert faulted < max(20 * base, 0.15), (base, faulted)
    # The bad server's requests fail within the timeout (connect 100 ms,
    # request 200 ms), with a wide margin.
    assert slowest < 10 * REQUEST_TIMEOUT_S, slowest
    # Every key holds its value (the healthy ones never moved).
    c = st.conn()
    try:
        for key in good:
            assert get(c, key) == value_of(key)
        for key in bad:
            assert get(c, key) in (None, value_of(key))
    finally:
        c.close()
    print(f"healthy p99 {base * 1e3:.2f} -> {faulted * 1e3:.2f} ms, failing slowest "
          f"{slowest * 1e3:.0f} ms, recovery {recovery * 1e3:.0f} ms")
    return base, faulted, slowest, recovery


def test_a_killed_server_is_marked_down_and_probed_back(strata_bin, healthy, tmp_path):
    bad = start_memcached()
    port = bad.port
    addr = f"127.0.0.1:{port}"
    mport = conftest.free_port()
    st, good, bad_keys = start_pool(strata_bin, tmp_path, healthy, addr, bad,
                                    metrics_port=mport)
    box = {}
    try:
        def kill():
            bad.stop(signal.SIGKILL)
            bad.close_log()

        def restart():
            box["srv"] = start_memcached(port)

        def metrics_say_down():
            m = scrape(mport)
            state = {s: m[f'strata_upstream_server_state{{server="{addr}",state="{s}"}}']
                     for s in ("up", "down", "probing")}
            assert state["up"] == 0 and state["down"] + state["probing"] == 1, state
            for h in healthy:
                assert m[f'strata_upstream_server_state{{server="127.0.0.1:{h.port}",'
                         'state="up"}'] == 1
            assert m[f'strata_upstream_marked_down_total{{server="{addr}"}}'] == 1
            rejected = sum(v for k, v in m.items()
                           if k.startswith("strata_upstream_requests_total{") and
                           f'server="{addr}"' in k and 'outcome="rejected"' in k)
            assert rejected > 10, rejected
            probes = sum(v for k, v in m.items()
                         if k.startswith("strata_upstream_requests_total{") and
                         f'server="{addr}"' in k and 'op="probe"' in k)
            assert probes >= 1, probes

        run_fault(st, good, bad_keys, kill, restart, while_down=metrics_say_down)
        m = scrape(mport)
        assert m[f'strata_upstream_server_state{{server="{addr}",state="up"}}'] == 1
        assert m[f'strata_upstream_requests_total{{server="{addr}",op="probe",'
                 'outcome="hit"}'] == 1
    finally:
        stop(st)
        if "srv" in box:
            box["srv"].stop()
            box["srv"].close_log()


def test_a_sigstopped_server_times_out_and_is_probed_back(strata_bin, healthy, tmp_path):
    bad = start_memcached()
    st, good, bad_keys = start_pool(strata_bin, tmp_path, healthy, f"127.0.0.1:{bad.port}", bad)
    try:
        run_fault(st, good, bad_keys, lambda: os.kill(bad.pid, signal.SIGSTOP),
                  lambda: os.kill(bad.pid, signal.SIGCONT))
        # The values stored before the stop are still there.
        c = st.conn()
        try:
            for key in bad_keys:
                assert get(c, key) == value_of(key)
        finally:
            c.close()
    finally:
        try:
            os.kill(bad.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        stop(st)
        bad.stop()
        bad.close_log()


@pytest.fixture
def relayed():
    if not os.access(REFERENCE_MEMCACHED, os.X_OK):
        pytest.skip("no reference memcached")
    srv = start_memcached()
    relay = Relay(srv.port)
    try:
        yield srv, relay
    finally:
        relay.stop()
        srv.stop()
        srv.close_log()


def test_a_stalled_relay_marks_the_server_down_until_released(strata_bin, healthy,
                                                             relayed, tmp_path):
    srv, relay = relayed
    st, good, bad_keys = start_pool(strata_bin, tmp_path, healthy, relay.address, srv)
    try:
        run_fault(st, good, bad_keys, relay.hold, relay.release)
    finally:
        stop(st)


def test_a_slow_server_is_slow_not_down(strata_bin, healthy, relayed, tmp_path):
    srv, relay = relayed
    st, good, bad_keys = start_pool(strata_bin, tmp_path, healthy, relay.address, srv)
    try:
        relay.delay(0.03)  # well under the request timeout
        c = st.conn()
        try:
            for key in bad_keys[:20]:
                assert get(c, key) == value_of(key)
        finally:
            c.close()
        assert down_count(st) == 0
    finally:
        relay.delay(0)
        stop(st)


def test_dropped_idle_connections_cost_no_request(strata_bin, healthy, relayed, tmp_path):
    srv, relay = relayed
    st, good, bad_keys = start_pool(strata_bin, tmp_path, healthy, relay.address, srv)
    try:
        c = st.conn()
        try:
            for round_ in range(5):
                before = relay.connections
                relay.drop_all()
                time.sleep(0.1)  # idle: strata sees the close before its next request
                for key in bad_keys[:5]:
                    assert get(c, key) == value_of(key), round_
                assert relay.connections == before + 1
            assert down_count(st) == 0
        finally:
            c.close()
    finally:
        stop(st)


def test_a_value_cut_in_the_middle_is_a_miss_never_a_short_value(strata_bin, healthy,
                                                                 relayed, tmp_path):
    srv, relay = relayed
    st, good, bad_keys = start_pool(strata_bin, tmp_path, healthy, relay.address, srv)
    try:
        c = st.conn()
        try:
            big = bytes((i * 7) % 251 for i in range(200_000))
            key = bad_keys[0]
            assert request(c, b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(big), big)) \
                == b"STORED\r\n"
            for cut in (10, 1000, 100_000, 199_990):
                relay.cut_after(cut)
                v = get(c, key)
                assert v is None, (cut, None if v is None else len(v))
                # The next get opens a new connection and gets it whole.
                assert get(c, key) == big
            assert down_count(st) == 0
        finally:
            c.close()
    finally:
        stop(st)


def test_in_flight_limit_fails_the_excess_at_once(strata_bin, healthy, relayed, tmp_path):
    srv, relay = relayed
    st, good, bad_keys = start_pool(strata_bin, tmp_path, healthy, relay.address, srv,
                               request_timeout="5s", extra=["  max_in_flight: 4"])
    try:
        relay.hold()
        c = st.conn()
        try:
            keys = bad_keys[:12]
            # One multi-get: its 12 fetches are queued in one loop
            # iteration; 4 fit, the other 8 fail at once (misses).
            c.send(b"get " + b" ".join(k.encode() for k in keys) + b"\r\n")
            time.sleep(0.3)
            relay.release()
            got = {}
            while True:
                line = c.readline()
                if line == b"END\r\n":
                    break
                _, key, _, n = line.split()[:4]
                got[key.decode()] = c.read_exact(int(n) + 2)[:-2]
            for key, v in got.items():
                assert v == value_of(key)
            assert len(got) == 4, sorted(got)
            assert down_count(st) == 0
        finally:
            c.close()
    finally:
        relay.release()
        stop(st)


@pytest.mark.parametrize("revalidate", ["300ms", "0"])
def test_an_idle_connection_dropped_silently_is_revalidated(strata_bin, healthy, relayed,
                                                            tmp_path, revalidate):
    """A firewall drops the idle connection without a word: with
    revalidate_idle, the next get finds out with an mn (within
    connect_timeout) and goes on a new connection; without, it waits for
    the request timeout and fails (the control)."""
    srv, relay = relayed
    st, good, bad_keys = start_pool(strata_bin, tmp_path, healthy, relay.address, srv,
                                    request_timeout="1s",
                                    extra=[f"  revalidate_idle: {revalidate}"])
    try:
        c = st.conn()
        try:
            key = bad_keys[0]
            assert get(c, key) == value_of(key)
            before = relay.connections
            relay.blackhole_all()
            time.sleep(0.5)  # idle past revalidate_idle
            t0 = time.monotonic()
            v = get(c, key)
            took = time.monotonic() - t0
            if revalidate == "0":
                assert v is None and took >= 0.9, (v, took)
            else:
                assert v == value_of(key), v
                assert took < 0.9, took  # connect_timeout (100 ms), not the request's
                assert relay.connections == before + 1
                assert down_count(st) == 0
            # Either way the next gets work on the new connection.
            for k in bad_keys[:5]:
                assert get(c, k) == value_of(k)
        finally:
            c.close()
    finally:
        stop(st)

