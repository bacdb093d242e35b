"""The upstream pool's membership at runtime (issue 25), against real
memcached 1.6.18 processes and the real strata binary:

* file: a server file re-read on change. Adding a fourth server to three
  moves about a quarter of the keys (ketama), all to the new server;
  removing one fails its keys fast (a get is a miss, a write SERVER_ERROR)
  during upstream.removal_grace, then remaps them; an unparseable or empty
  file keeps the last list (counted); a bad file at startup stops strata
  with a path-qualified message;
* dns+ and dnssrv+: a DNS server written here with dnslib on a picked UDP
  port of 127.0.0.1 (upstream.dns_resolver points at it) answers A and SRV
  records; a change moves only the expected share; SERVFAIL, silence and an
  empty answer each keep the last good list;
* configuration errors of the new keys, path-qualified.

Where a key lives is read from the memcached servers directly (mg), never
inferred from strata. strata runs with near_cache_ttl 0 (pure routing), so
every request goes to the pool. Every process is started on a free port
(memcached for the dns+ test on 127.0.3.x, one port for all, as A records
carry no port) and stopped by PID.
"""

import os
import socket
import subprocess
import threading
import time

import pytest

import conftest
from conftest import REFERENCE_MEMCACHED, Server, free_port
from mcraw import Conn
from test_upstream import Strata, check_metrics_text, get, request
from test_upstream_faults import start_strata as start_probing_strata
from test_upstream_faults import stop as stop_checked
from test_upstream_faults import wait_for as faults_wait_for

pytestmark = pytest.mark.strata_only

N_KEYS = 2000
KEYS = [f"member:{i}" for i in range(N_KEYS)]
GRACE_S = 2.0


# ------------------------------------------------------------------ helpers

def start_memcached(host="127.0.0.1", port=None):
    srv = Server(REFERENCE_MEMCACHED, memory_mb=64, threads=1)
    srv.host = host
    if port is None:
        return srv.start()
    saved = conftest.free_port
    conftest.free_port = lambda: port
    try:
        return srv.start()
    finally:
        conftest.free_port = saved


def stop_all(servers):
    for s in servers:
        s.stop()
        s.close_log()


@pytest.fixture
def memcached():
    if not os.access(REFERENCE_MEMCACHED, os.X_OK):
        pytest.skip("no reference memcached")
    started = []

    def make(**kw):
        srv = start_memcached(**kw)
        started.append(srv)
        return srv

    try:
        yield make
    finally:
        stop_all(started)


def addr(srv):
    return f"{srv.host}:{srv.port}"


def values_on(srv, keys):
    """{key: value} of the `keys` that `srv` holds (one pipelined batch)."""
    out = {}
    with Conn.to(srv) as c:
        c.send(b"".join(b"mg %s k v\r\n" % k.encode() for k in keys) + b"mn\r\n")
        while True:
            line = c.readline()
            if line == b"MN\r\n":
                break
            if line.startswith(b"EN"):
                continue
            assert line.startswith(b"VA "), line
            parts = line.split()
            n = int(parts[1])
            key = next(p[1:] for p in parts[2:] if p.startswith(b"k")).decode()
            out[key] = c.read_exact(n + 2)[:-2]
    return out


def owners(servers, keys, value):
    """{key: index in `servers`} of the server holding `value` for each key."""
    found = {}
    for i, srv in enumerate(servers):
        for k, v in values_on(srv, keys).items():
            if v == value(k):
                assert k not in found, f"{k} on two servers"
                found[k] = i
    return found


def set_all(st, keys, value):
    """Sets every key through strata (pipelined); {key: reply line}."""
    c = st.conn()
    try:
        replies = {}
        for start in range(0, len(keys), 200):
            batch = keys[start:start + 200]
            c.send(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k.encode(), len(value(k)), value(k))
                            for k in batch))
            for k in batch:
                replies[k] = c.readline()
        return replies
    finally:
        c.close()


def wait_for(cond, timeout, step=0.05):
    return faults_wait_for(cond, timeout, step)


def stat(st, name):
    return int(st.stats()[name])


def start_strata(strata_bin, tmp_path, entries, extra=(), threads=2, metrics_port=None):
    return start_probing_strata(
        strata_bin, tmp_path, entries, threads=threads, metrics_port=metrics_port,
        extra=[f"  removal_grace: {int(GRACE_S * 1000)}ms"] + list(extra))


def write_atomically(path, text):
    """As a ConfigMap update does: a new file renamed over the old one."""
    tmp = str(path) + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def v1(k):
    return ("one-" + k).encode()


def v2(k):
    return ("two-" + k).encode()


def v3(k):
    return ("three-" + k).encode()


def moved_share(before, after, keys):
    moved = [k for k in keys if before[k] != after[k]]
    return moved, len(moved) / len(keys)


def check_a_fourth_takes_a_quarter(st, servers, before):
    """A fourth server (servers[3]) has joined the three that own `before`:
    about a quarter of the keys move, all to it.  Returns the new owners."""
    assert wait_for(lambda: stat(st, "upstream_servers") == 4, 10)
    assert set(set_all(st, KEYS, v2).values()) == {b"STORED\r\n"}
    after = owners(servers, KEYS, v2)
    assert len(after) == N_KEYS
    moved, share = moved_share(before, after, KEYS)
    print(f"\n[membership] 3 -> 4 servers moved {share:.3f} of {N_KEYS} keys")
    assert 0.15 <= share <= 0.35, share
    assert {after[k] for k in moved} == {3}
    return after


# ------------------------------------------------------------------ file:

def test_a_server_file_change_moves_a_quarter_then_a_removal_fails_fast(
        strata_bin, memcached, tmp_path):
    servers = [memcached() for _ in range(4)]
    path = tmp_path / "servers"
    write_atomically(path, "# the pool\n" + "".join(addr(s) + "\n" for s in servers[:3]))
    st = start_strata(strata_bin, tmp_path, [f"file:{path}"], extra=["  file_refresh: 100ms"])
    try:
        assert stat(st, "upstream_servers") == 3
        assert set(set_all(st, KEYS, v1).values()) == {b"STORED\r\n"}
        before = owners(servers, KEYS, v1)
        assert len(before) == N_KEYS and 3 not in before.values()

        # A fourth server: about a quarter of the keys move, all to it.
        write_atomically(path, "".join(addr(s) + "\n" for s in servers))
        after = check_a_fourth_takes_a_quarter(st, servers, before)

        # Server 1 leaves the file: during the grace its keys fail fast,
        # the others' work; nothing is written anywhere else for them.
        gone = [k for k in KEYS if after[k] == 1]
        kept = [k for k in KEYS if after[k] != 1]
        write_atomically(path, "".join(addr(s) + "\n" for i, s in enumerate(servers) if i != 1))
        assert wait_for(lambda: stat(st, "upstream_servers_leaving") == 1, 10)
        assert stat(st, "upstream_servers") == 4
        t0 = time.monotonic()
        replies = set_all(st, gone[:50] + kept[:50], v3)
        assert all(replies[k] == b"SERVER_ERROR upstream unavailable\r\n" for k in gone[:50])
        assert all(replies[k] == b"STORED\r\n" for k in kept[:50])
        c = st.conn()
        assert all(get(c, k) is None for k in gone[:20])
        assert all(get(c, k) == v3(k) for k in kept[:20])
        c.close()
        assert time.monotonic() - t0 < GRACE_S  # fast, not timeouts
        assert values_on(servers[1], gone[:50]) == {k: v2(k) for k in gone[:50]}
        for i in (0, 2, 3):
            assert not any(v == v3(k) for k, v in values_on(servers[i], gone[:50]).items())

        # After the grace it leaves the ring: its keys go elsewhere, and
        # only they move.
        assert wait_for(lambda: stat(st, "upstream_servers") == 3, GRACE_S + 10)
        assert stat(st, "upstream_servers_leaving") == 0
        assert set(set_all(st, KEYS, v3).values()) == {b"STORED\r\n"}
        final = owners(servers, KEYS, v3)
        assert len(final) == N_KEYS and 1 not in final.values()
        assert all(final[k] == after[k] for k in kept)
    finally:
        stop_checked(st)


def test_a_broken_or_empty_file_keeps_the_last_list(strata_bin, memcached, tmp_path):
    servers = [memcached() for _ in range(2)]
    path = tmp_path / "servers"
    write_atomically(path, "".join(addr(s) + "\n" for s in servers))
    mport = free_port()
    st = start_strata(strata_bin, tmp_path, [f"file:{path}"], extra=["  file_refresh: 100ms"],
                      metrics_port=mport)
    try:
        assert stat(st, "upstream_servers") == 2
        generation = stat(st, "upstream_membership_generation")
        for bad in ("this is not a server list\n", "127.0.0.1:0\n", "# nothing\n", ""):
            failures = stat(st, "upstream_membership_refresh_failures")
            write_atomically(path, bad)
            assert wait_for(
                lambda: stat(st, "upstream_membership_refresh_failures") >= failures + 2, 10)
            assert stat(st, "upstream_servers") == 2
            assert stat(st, "upstream_membership_generation") == generation
        os.unlink(path)  # gone altogether
        failures = stat(st, "upstream_membership_refresh_failures")
        assert wait_for(
            lambda: stat(st, "upstream_membership_refresh_failures") >= failures + 2, 10)
        assert stat(st, "upstream_servers") == 2
        replies = set_all(st, KEYS[:100], v1)
        assert set(replies.values()) == {b"STORED\r\n"}
        # Metrics: the source's figures.
        import urllib.request
        body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read()
        text = body.decode()
        check_metrics_text(text)
        src = f'source="file:{path}"'
        assert f"strata_upstream_source_members{{{src}}} 2" in text
        assert 'strata_upstream_members{state="serving"} 2' in text
        failures_line = next(line for line in text.splitlines()
                             if line.startswith("strata_upstream_source_refresh_failures_total"))
        assert int(float(failures_line.split()[-1])) >= 8
        last = next(line for line in text.splitlines()
                    if line.startswith("strata_upstream_source_last_success_timestamp_seconds"))
        assert float(last.split()[-1]) > time.time() - 3600
        # Good again: read at once.
        write_atomically(path, addr(servers[0]) + "\n")
        assert wait_for(lambda: stat(st, "upstream_servers_leaving") == 1, 10)
    finally:
        stop_checked(st)


def test_a_bad_file_at_startup_stops_strata(strata_bin, tmp_path):
    path = tmp_path / "servers"
    path.write_text("127.0.0.1:11211\n\n127.0.0.1:0\n")
    stderr = start_fails(strata_bin, tmp_path,
                         f"upstream:\n  servers: [127.0.0.1:1, \"file:{path}\"]\n")
    assert stderr.startswith(
        f"strata: upstream.servers[1]: {path}: line 3: port must be 1..65535, got \"0\""), stderr
    stderr = start_fails(strata_bin, tmp_path,
                         f"upstream:\n  servers: [\"file:{tmp_path}/missing\"]\n")
    assert stderr.startswith(
        f"strata: upstream.servers[0]: {tmp_path}/missing: cannot read: No such file"), stderr
    path.write_text("# nobody yet\n")
    stderr = start_fails(strata_bin, tmp_path, f"upstream:\n  servers: [\"file:{path}\"]\n")
    assert stderr.startswith(f"strata: upstream.servers[0]: {path}: lists no server"), stderr


# ------------------------------------------------------------------ DNS

class Dns:
    """A DNS server on 127.0.0.1 (UDP, a picked port) answering from
    dictionaries the test changes: A records by name, SRV records by name.
    mode: "ok", "servfail", "empty" (NOERROR, no answer)."""

    def __init__(self):
        from dnslib.server import BaseResolver, DNSServer

        outer = self
        self.a = {}
        self.srv = {}
        self.mode = "ok"
        self.queries = 0

        class Resolver(BaseResolver):
            def resolve(self, request, handler):
                return outer._answer(request)

        for _ in range(5):
            self.port = free_udp_port()
            try:
                self.server = DNSServer(Resolver(), port=self.port, address="127.0.0.1")
                break
            except OSError:
                continue
        self.server.start_thread()

    def _answer(self, request):
        from dnslib import QTYPE, RCODE, RR, SRV, A
        self.queries += 1
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        qtype = QTYPE[request.q.qtype]
        if self.mode == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if self.mode == "empty":
            return reply
        if name not in self.a and name not in self.srv:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if qtype == "A":
            for ip in self.a.get(name, []):
                reply.add_answer(RR(name + ".", QTYPE.A, rdata=A(ip), ttl=1))
        elif qtype == "SRV":
            for target, port in self.srv.get(name, []):
                reply.add_answer(RR(name + ".", QTYPE.SRV, ttl=1,
                                    rdata=SRV(priority=0, weight=10, port=port,
                                              target=target + ".")))
        return reply

    def stop(self):
        self.server.stop()
        self.server.server.server_close()


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dns():
    pytest.importorskip("dnslib")
    d = Dns()
    try:
        yield d
    finally:
        d.stop()


def dns_strata(strata_bin, tmp_path, entry, dns, metrics_port=None):
    return start_strata(strata_bin, tmp_path, [entry], metrics_port=metrics_port, extra=[
        f"  dns_resolver: 127.0.0.1:{dns.port}",
        "  dns_refresh: 200ms",
    ])


def test_dns_a_records_and_their_changes(strata_bin, memcached, dns, tmp_path):
    port = free_port()
    servers = [memcached(host=f"127.0.3.{i + 1}", port=port) for i in range(4)]
    dns.a["mc.strata.test"] = [s.host for s in servers[:3]]
    st = dns_strata(strata_bin, tmp_path, f"dns+mc.strata.test:{port}", dns)
    try:
        assert stat(st, "upstream_servers") == 3
        assert set(set_all(st, KEYS, v1).values()) == {b"STORED\r\n"}
        before = owners(servers, KEYS, v1)
        assert len(before) == N_KEYS

        # A fourth address: a quarter moves, to it only.
        dns.a["mc.strata.test"] = [s.host for s in reversed(servers)]
        check_a_fourth_takes_a_quarter(st, servers, before)

        # SERVFAIL, then an empty answer, then silence: the list stays.
        for mode in ("servfail", "empty"):
            failures = stat(st, "upstream_membership_refresh_failures")
            dns.mode = mode
            assert wait_for(
                lambda: stat(st, "upstream_membership_refresh_failures") >= failures + 2, 10)
            assert stat(st, "upstream_servers") == 4
            assert stat(st, "upstream_servers_leaving") == 0
        dns.mode = "ok"
        dns.stop()
        failures = stat(st, "upstream_membership_refresh_failures")
        assert wait_for(
            lambda: stat(st, "upstream_membership_refresh_failures") >= failures + 1, 15)
        assert stat(st, "upstream_servers") == 4
        assert stat(st, "upstream_servers_leaving") == 0
        assert set(set_all(st, KEYS[:200], v3).values()) == {b"STORED\r\n"}
    finally:
        stop_checked(st)


def test_dns_srv_records_carry_the_ports(strata_bin, memcached, dns, tmp_path):
    servers = [memcached() for _ in range(4)]
    name = "_memcache._tcp.mc.strata.test"
    for i in range(4):
        dns.a[f"mc-{i}.mc.strata.test"] = ["127.0.0.1"]
    dns.srv[name] = [(f"mc-{i}.mc.strata.test", s.port) for i, s in enumerate(servers[:3])]
    mport = free_port()
    st = dns_strata(strata_bin, tmp_path, f"dnssrv+{name}", dns, metrics_port=mport)
    try:
        assert stat(st, "upstream_servers") == 3
        assert set(set_all(st, KEYS, v1).values()) == {b"STORED\r\n"}
        before = owners(servers, KEYS, v1)
        assert len(before) == N_KEYS

        dns.srv[name] = [(f"mc-{i}.mc.strata.test", s.port) for i, s in enumerate(servers)]
        after = check_a_fourth_takes_a_quarter(st, servers, before)

        # An empty SRV answer keeps the list.
        failures = stat(st, "upstream_membership_refresh_failures")
        dns.srv[name] = []
        assert wait_for(
            lambda: stat(st, "upstream_membership_refresh_failures") >= failures + 2, 10)
        assert stat(st, "upstream_servers") == 4
        import urllib.request
        text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics",
                                      timeout=5).read().decode()
        assert f'strata_upstream_source_members{{source="dnssrv+{name}"}} 4' in text

        # A record removed: its keys fail fast during the grace, then move.
        dns.srv[name] = [(f"mc-{i}.mc.strata.test", s.port) for i, s in enumerate(servers)
                         if i != 0]
        assert wait_for(lambda: stat(st, "upstream_servers_leaving") == 1, 10)
        gone = [k for k in KEYS if after[k] == 0][:30]
        replies = set_all(st, gone, v3)
        assert set(replies.values()) == {b"SERVER_ERROR upstream unavailable\r\n"}
        assert wait_for(lambda: stat(st, "upstream_servers") == 3, GRACE_S + 10)
        assert set(set_all(st, gone, v3).values()) == {b"STORED\r\n"}
    finally:
        stop_checked(st)


def test_dns_that_never_answers_at_startup_starts_empty(strata_bin, memcached, dns, tmp_path):
    srv = memcached()
    dns.mode = "servfail"
    dns.a["mc.strata.test"] = ["127.0.0.1"]
    st = dns_strata(strata_bin, tmp_path, f"dns+mc.strata.test:{srv.port}", dns)
    try:
        assert stat(st, "upstream_servers") == 0
        c = st.conn()
        assert request(c, b"set k 0 0 1\r\nx\r\n") == b"SERVER_ERROR upstream unavailable\r\n"
        assert get(c, "k") is None
        c.close()
        dns.mode = "ok"
        assert wait_for(lambda: stat(st, "upstream_servers") == 1, 10)
        c = st.conn()
        assert request(c, b"set k 0 0 1\r\nx\r\n") == b"STORED\r\n"
        assert get(c, "k") == b"x"
        c.close()
    finally:
        stop_checked(st)


# ------------------------------------------------------------------ config

def start_fails(strata_bin, tmp_path, text):
    path = tmp_path / "strata.yaml"
    path.write_text(text)
    done = subprocess.run([strata_bin, "--config", str(path), "-p", "0",
                           "--metrics-listen", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    return done.stderr


@pytest.mark.parametrize("text, message", [
    ("upstream:\n  servers: [\"dns+mc\"]\n",
     "strata: upstream.servers[0]: dns+ needs a port (\"dns+host:port\"), got \"dns+mc\""),
    ("upstream:\n  servers: [a:1, \"dnssrv+\"]\n",
     "strata: upstream.servers[1]: dnssrv+ needs an SRV name"),
    ("upstream:\n  servers: [\"file:\"]\n",
     "strata: upstream.servers[0]: file: needs a path"),
    ("upstream:\n  dns_resolver: resolver.local:53\n",
     "strata: upstream.dns_resolver: expected an IP address and port like 10.96.0.10:53"),
    ("upstream:\n  dns_refresh: 1ms\n",
     "strata: upstream.dns_refresh: must be 100ms..1h, got \"1ms\""),
    ("upstream:\n  file_refresh: often\n",
     "strata: upstream.file_refresh: expected a duration like 30s, 100ms..1h"),
    ("upstream:\n  removal_grace: 3h\n",
     "strata: upstream.removal_grace: must be at most 1h, got \"3h\""),
])
def test_bad_membership_settings_stop_strata(strata_bin, tmp_path, text, message):
    stderr = start_fails(strata_bin, tmp_path, text)
    assert stderr.startswith(message), stderr


def test_membership_churn_under_load_never_crashes_or_lies(strata_bin, memcached, tmp_path):
    """Members come and go every 150 ms while two clients set and get:
    strata stays up, every reply is well formed, and a get answers a miss
    or a value stored for that key (the last one, unless the membership
    changed between the set and the get: then the key's new owner may hold
    an older value from an earlier round, as with any client that
    rehashes)."""
    servers = [memcached() for _ in range(4)]
    path = tmp_path / "servers"
    write_atomically(path, "".join(addr(s) + "\n" for s in servers))
    st = start_strata(strata_bin, tmp_path, [f"file:{path}"], extra=["  file_refresh: 100ms"])
    stop = threading.Event()
    errors = []

    def client(n):
        c = st.conn()
        try:
            i = 0
            while not stop.is_set():
                key = f"churn:{n}:{i % 50}"
                value = b"%d-%d" % (n, i)
                r = request(c, b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(value), value))
                if r not in (b"STORED\r\n", b"SERVER_ERROR upstream unavailable\r\n"):
                    errors.append(r)
                got = get(c, key)
                if got is not None:
                    gn, gi = (int(x) for x in got.split(b"-"))
                    if gn != n or gi % 50 != i % 50 or gi > i:
                        errors.append((key, got, value))
                i += 1
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(2)]
    for t in threads:
        t.start()
    try:
        lists = [servers[:2], servers[1:], servers[::2], servers, servers[3:]]
        for round_ in range(20):
            chosen = lists[round_ % len(lists)]
            write_atomically(path, "".join(addr(s) + "\n" for s in chosen))
            time.sleep(0.15)
        stop.set()
        for t in threads:
            t.join(timeout=10)
        assert not errors, errors[:5]
        assert st.server.alive()
        assert stat(st, "upstream_membership_generation") > 5
    finally:
        stop.set()
        stop_checked(st)


@pytest.mark.parametrize("grace", ["0", "1500ms"])
def test_requests_in_flight_to_a_removed_server_end_cleanly(strata_bin, memcached, tmp_path,
                                                             grace):
    """A set whose reply a relay holds back while its server leaves the
    file: with no grace it fails at once (SERVER_ERROR upstream
    unavailable), well before request_timeout; with a grace it completes
    when the reply comes (the connection stays while the member leaves),
    and a new request for the key fails fast meanwhile."""
    from relay import Relay
    servers = [memcached() for _ in range(2)]
    with Relay(servers[0].port) as relay:
        held = f"127.0.0.1:{relay.port}"
        other = addr(servers[1])
        path = tmp_path / "servers"
        write_atomically(path, f"{held}\n{other}\n")
        st = Strata(strata_bin, str(tmp_path / "strata"), [f"file:{path}"], near_cache_ttl="0",
                    threads=1, request_timeout="10s", extra_upstream=[
                        "  file_refresh: 100ms", f"  removal_grace: {grace}"])
        try:
            # a key the relayed server owns
            c = st.conn()
            key = None
            for i in range(200):
                k = f"inflight:{i}"
                assert request(c, b"set %s 0 0 1\r\nx\r\n" % k.encode()) == b"STORED\r\n"
                if values_on(servers[0], [k]):
                    key = k
                    break
            assert key is not None
            relay.hold()
            c.send(b"set %s 0 0 1\r\ny\r\n" % key.encode())
            time.sleep(0.3)
            t0 = time.monotonic()
            write_atomically(path, f"{other}\n")
            if grace == "0":
                assert c.readline(timeout=5) == b"SERVER_ERROR upstream unavailable\r\n"
                assert time.monotonic() - t0 < 3
                assert wait_for(lambda: stat(st, "upstream_servers") == 1, 5)
            else:
                assert wait_for(lambda: stat(st, "upstream_servers_leaving") == 1, 5)
                c2 = st.conn()
                assert request(c2, b"set %s 0 0 1\r\nz\r\n" % key.encode()) == \
                    b"SERVER_ERROR upstream unavailable\r\n"
                c2.close()
                relay.release()
                assert c.readline(timeout=5) == b"STORED\r\n"
            relay.release()
            # the connection still works, the key now on the other server
            assert wait_for(lambda: stat(st, "upstream_servers") == 1, 10)
            assert request(c, b"set %s 0 0 1\r\nw\r\n" % key.encode()) == b"STORED\r\n"
            assert values_on(servers[1], [key]) == {key: b"w"}
            c.close()
            assert st.server.alive()
        finally:
            stop_checked(st)
