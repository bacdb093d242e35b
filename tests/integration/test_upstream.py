"""strata in front of a pool of real memcached 1.6.18 servers (issue 23).

* placement: keys stored by pymemcache's HashClient, pylibmc (ketama) and
  nutcracker (twemproxy, md5 + ketama) are all found through strata with
  the matching distribution, and keys stored through strata are found by
  those clients (so each lives on the server the client picks);
* two strata ("two pods") over three memcached: each reads its own writes
  at once, sees the other's within near_cache_ttl, deletes propagate, and
  classic replies (gets' CAS, cas, incr/decr, touch, errors) are the
  pool's;
* herd: while the owning server's replies are held back by a relay, 1,000
  concurrent gets of one key through one strata cost that server one get
  per strata worker (its cmd_get);
* the fill race: a delete through strata while strata's fetch of the key
  is held back: the key never reappears locally;
* near_cache_ttl 0 (pure routing) keeps nothing locally;
* a server that is down answers gets as misses and writes with
  SERVER_ERROR, and the other servers' keys keep working; a server whose
  replies stall past upstream.request_timeout fails the same way.

Every process is started on 127.0.0.1 with a free port and stopped by PID.
"""

import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import REFERENCE_MEMCACHED, Server, free_port, wait_listening
from mcraw import Conn, stats
from relay import Relay

pytestmark = pytest.mark.strata_only

KEYS = [f"key:{i}:{'x' * (i % 40)}" for i in range(400)]


def mc_stats(server):
    with Conn.to(server) as c:
        return {k.decode(): v.decode() for k, v in stats(c)}


def holders(servers, key):
    """Which of `servers` hold `key` (asked one by one)."""
    found = []
    for i, srv in enumerate(servers):
        c = Conn.to(srv)
        try:
            c.send(b"mg %s v\r\n" % key.encode())
            line = c.readline()
            if line.startswith(b"VA "):
                c.readline()
                found.append(i)
        finally:
            c.close()
    return found


@pytest.fixture
def pool():
    if not os.access(REFERENCE_MEMCACHED, os.X_OK):
        pytest.skip("no reference memcached")
    servers = [Server(REFERENCE_MEMCACHED, memory_mb=64, threads=1) for _ in range(3)]
    try:
        for s in servers:
            s.start()
        yield servers
    finally:
        for s in servers:
            s.stop()
            s.close_log()


class Strata:
    """A strata with an upstream section, started from a config file."""

    def __init__(self, strata_bin, folder, servers, distribution="ketama",
                 near_cache_ttl="60s", forward_flush=False, threads=2, ssd=False,
                 request_timeout="200ms", metrics_port=None, extra_upstream=()):
        os.makedirs(folder, exist_ok=True)
        config = os.path.join(folder, "strata.yaml")
        lines = ["tiers:", "  ram: {size: 64MiB}"]
        if ssd:
            lines += ["  ssd:", f"    path: {folder}/cache.bin", "    size: 256MiB"]
        lines += ["upstream:", "  servers:"]
        lines += [f"    - \"{s}\"" for s in servers]
        lines += [f"  distribution: {distribution}",
                  f"  near_cache_ttl: {near_cache_ttl}",
                  f"  forward_flush: {'true' if forward_flush else 'false'}",
                  f"  request_timeout: {request_timeout}"]
        lines += list(extra_upstream)
        if metrics_port is None:
            lines += ["metrics: {enabled: false}"]
        else:
            lines += ["metrics:", "  enabled: true", f"  listen: 127.0.0.1:{metrics_port}"]
        with open(config, "w") as f:
            f.write("\n".join(lines) + "\n")
        extra = ["--config", config]
        if metrics_port is not None:
            extra += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
        self.server = Server(strata_bin, memory_mb=None, threads=threads,
                             extra_args=extra,
                             log_path=os.path.join(folder, "strata.log"))
        self.server.start()

    def conn(self):
        return Conn.to(self.server)

    def stats(self):
        return mc_stats(self.server)

    def stop(self):
        self.server.stop()
        self.server.close_log()


def check_metrics_text(text):
    """`promtool check metrics` (where promtool is installed) passes the
    exposition `text` without a word."""
    promtool = shutil.which("promtool")
    if promtool:
        res = subprocess.run([promtool, "check", "metrics"], input=text,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and res.stdout == "" and res.stderr == "", \
            res.stdout + res.stderr


def addresses(servers):
    return [f"127.0.0.1:{s.port}" for s in servers]


def request(conn, data, lines=1):
    conn.send(data)
    return b"".join(conn.readline() for _ in range(lines))


def get(conn, key):
    """The value of `key` through a classic get, or None."""
    conn.send(b"get %s\r\n" % key.encode())
    line = conn.readline()
    if line == b"END\r\n":
        return None
    assert line.startswith(b"VALUE "), line
    n = int(line.split()[3])
    data = conn.read_exact(n + 2)[:-2]
    assert conn.readline() == b"END\r\n"
    return data


# ------------------------------------------------------------------ placement

def check_placement(strata_bin, tmp_path, pool, servers, distribution, client_get):
    """KEYS were stored by a client: strata with `servers` and `distribution`
    finds every one, and what it stores the client finds, on one server."""
    st = Strata(strata_bin, str(tmp_path / "s"), servers, distribution=distribution)
    try:
        c = st.conn()
        for k in KEYS:
            assert get(c, k) == k.encode() + b"-v", k
        for k in KEYS[:100]:
            assert request(c, b"set w%s 0 0 2\r\nok\r\n" % k.encode()) == b"STORED\r\n"
        for k in KEYS[:100]:
            assert client_get("w" + k) == b"ok", k
            assert len(holders(pool, "w" + k)) == 1
        c.close()
    finally:
        st.stop()


def test_keys_of_pymemcache_hashclient_found_through_rendezvous(strata_bin, pool, tmp_path):
    from pymemcache.client.hash import HashClient
    addrs = addresses(pool)
    client = HashClient(addrs, use_pooling=False)
    for k in KEYS:
        assert client.set(k, k.encode() + b"-v", noreply=False)
    try:
        check_placement(strata_bin, tmp_path, pool, addrs, "rendezvous", client.get)
    finally:
        client.close()


def test_keys_of_pylibmc_ketama_found_through_ketama(strata_bin, pool, tmp_path):
    pylibmc = pytest.importorskip("pylibmc")
    addrs = addresses(pool)
    client = pylibmc.Client(addrs, binary=False, behaviors={"ketama_weighted": True})
    for k in KEYS:
        assert client.set(k, k.encode() + b"-v")
    check_placement(strata_bin, tmp_path, pool, addrs, "ketama", client.get)


def test_keys_of_nutcracker_found_through_ketama(strata_bin, pool, tmp_path):
    if shutil.which("nutcracker") is None:
        pytest.skip("nutcracker is not installed")
    from pymemcache.client.base import Client
    addrs = addresses(pool)
    port = free_port()
    conf = tmp_path / "nutcracker.yml"
    conf.write_text("pool:\n  listen: 127.0.0.1:%d\n  hash: md5\n  distribution: ketama\n"
                    "  auto_eject_hosts: false\n  servers:\n" % port +
                    "".join(f"    - {a}:1\n" for a in addrs))
    proc = subprocess.Popen(["nutcracker", "-c", str(conf), "-s", str(free_port()),
                             "-a", "127.0.0.1", "-o", str(tmp_path / "nc.log"),
                             "-p", str(tmp_path / "nc.pid")])
    try:
        wait_listening(port, what="nutcracker")
        nc = Client(("127.0.0.1", port))
        for k in KEYS:
            assert nc.set(k, k.encode() + b"-v", noreply=False)
        check_placement(strata_bin, tmp_path, pool, [a + ":1" for a in addrs], "ketama", nc.get)
        nc.close()
    finally:
        proc.terminate()
        proc.wait(10)


# ------------------------------------------------------------ two pods, one pool

def test_two_pods_read_their_writes_and_see_each_other(strata_bin, pool, tmp_path):
    addrs = addresses(pool)
    a = Strata(strata_bin, str(tmp_path / "a"), addrs, near_cache_ttl="1s", ssd=True)
    b = Strata(strata_bin, str(tmp_path / "b"), addrs, near_cache_ttl="1s")
    try:
        ca, cb = a.conn(), b.conn()
        for i in range(50):
            k = f"pod:{i}"
            assert request(ca, b"set %s 7 0 2\r\nv1\r\n" % k.encode()) == b"STORED\r\n"
            assert get(ca, k) == b"v1"   # its own write, at once
            assert get(cb, k) == b"v1"   # b fetches it (and keeps it 1 s)
        # a overwrites: a reads its own write at once; b within 1 s (+1 for
        # whole-second expiry).
        for i in range(50):
            k = f"pod:{i}"
            assert request(ca, b"set %s 7 0 2\r\nv2\r\n" % k.encode()) == b"STORED\r\n"
            assert get(ca, k) == b"v2"
        time.sleep(2.2)
        for i in range(50):
            assert get(cb, f"pod:{i}") == b"v2"
        # Deletes propagate the same way.
        for i in range(50):
            assert request(cb, b"delete pod:%d\r\n" % i) == b"DELETED\r\n"
            assert get(cb, f"pod:{i}") is None
        time.sleep(2.2)
        for i in range(50):
            assert get(ca, f"pod:{i}") is None
        s = b.stats()
        assert int(s["upstream_fetches"]) > 0 and int(s["upstream_fills"]) > 0, s
        ca.close()
        cb.close()
    finally:
        a.stop()
        b.stop()


def test_classic_replies_are_the_pools(strata_bin, pool, tmp_path):
    """The replies of every forwarded command, against memcached's own."""
    addrs = addresses(pool)
    st = Strata(strata_bin, str(tmp_path / "s"), addrs[:1])
    ref = Server(REFERENCE_MEMCACHED, memory_mb=64, threads=1)
    ref.start()
    script = [
        b"get k\r\n", b"set k 5 0 3\r\nabc\r\n", b"get k\r\n", b"append k 0 0 2\r\nde\r\n",
        b"prepend k 0 0 1\r\nz\r\n", b"get k\r\n", b"add k 0 0 1\r\nx\r\n",
        b"replace nope 0 0 1\r\nx\r\n", b"add n 0 0 2\r\n10\r\n", b"incr n 5\r\n",
        b"decr n 100\r\n", b"incr nope 1\r\n", b"incr k 1\r\n", b"touch k 1000\r\n",
        b"touch nope 10\r\n", b"gat 0 k n nope\r\n", b"delete n\r\n", b"delete n\r\n",
        b"set big 0 0 1\r\nb\r\n", b"get big\r\n",
        b"set big 0 0 2000000\r\n" + b"x" * 2000000 + b"\r\n", b"get big\r\n",
        b"set neg 0 -1 1\r\nx\r\n", b"get neg\r\n", b"set k 0 0 1 noreply\r\ny\r\n",
        b"get k\r\n", b"cas nope 0 0 1 1\r\nx\r\n", b"flush_all\r\n", b"get k\r\n",
        b"version\r\n",
    ]
    try:
        outs = []
        for srv in (ref, st.server):
            c = Conn.to(srv)
            got = []
            for req in script:
                c.send(req)
                if req == b"version\r\n":
                    got.append(c.readline()[:8])
                    break
                if req.endswith(b"noreply\r\ny\r\n"):
                    continue
                line = c.readline()
                chunk = line
                while line.startswith(b"VALUE "):
                    chunk += c.read_exact(int(line.split()[3]) + 2)
                    line = c.readline()
                    chunk += line
                got.append(chunk)
            c.close()
            outs.append(got)
        # flush_all is local only (forward_flush false): the pool still has
        # k, which strata fetches again. Everything before is the same.
        assert outs[1][:-2] == outs[0][:-2]
        # gets/cas: strata returns the pool's CAS, and cas is checked there.
        c = st.conn()
        c.send(b"gets k\r\n")
        line = c.readline()
        cas = int(line.split()[4])
        c.read_exact(3)
        assert c.readline() == b"END\r\n"
        assert request(c, b"cas k 0 0 1 %d\r\nq\r\n" % (cas + 1)) == b"EXISTS\r\n"
        assert request(c, b"cas k 0 0 1 %d\r\nq\r\n" % cas) == b"STORED\r\n"
        assert get(c, "k") == b"q"
        c.close()
    finally:
        st.stop()
        ref.stop()
        ref.close_log()


def test_forward_flush_reaches_the_pool(strata_bin, pool, tmp_path):
    addrs = addresses(pool)
    st = Strata(strata_bin, str(tmp_path / "s"), addrs, forward_flush=True)
    try:
        c = st.conn()
        for i in range(30):
            assert request(c, b"set f%d 0 0 1\r\nx\r\n" % i) == b"STORED\r\n"
        assert request(c, b"flush_all\r\n") == b"OK\r\n"
        for i in range(30):
            assert get(c, f"f{i}") is None
        assert sum(int(mc_stats(s)["cmd_flush"]) for s in pool) == 3
        c.close()
    finally:
        st.stop()


def test_pure_routing_keeps_nothing_locally(strata_bin, pool, tmp_path):
    addrs = addresses(pool)
    st = Strata(strata_bin, str(tmp_path / "s"), addrs, near_cache_ttl="0s")
    try:
        c = st.conn()
        assert request(c, b"set r 0 0 1\r\nx\r\n") == b"STORED\r\n"
        for _ in range(5):
            assert get(c, "r") == b"x"
        s = st.stats()
        assert int(s["upstream_fetches"]) == 5 and int(s["upstream_fills"]) == 0, s
        assert int(s["curr_items"]) == 0
        c.close()
    finally:
        st.stop()


# ------------------------------------------------------------ herd, fill race

def test_concurrent_misses_cost_one_get_per_worker(strata_bin, pool, tmp_path):
    workers = 2
    with Relay(pool[0].port) as relay:
        st = Strata(strata_bin, str(tmp_path / "s"), [relay.address], threads=workers,
                    request_timeout="10s")
        try:
            c = Conn.to(pool[0])
            assert request(c, b"set herd 0 0 5\r\nhello\r\n") == b"STORED\r\n"
            c.close()
            before = int(mc_stats(pool[0])["cmd_get"])
            relay.hold()
            # 1,000 gets: 250 connections with 4 pipelined each.
            conns = [st.conn() for _ in range(250)]
            for cn in conns:
                cn.send(b"get herd\r\n" * 4)
            time.sleep(1.0)  # every get is in, waiting for the one fetch
            relay.release()
            for cn in conns:
                for _ in range(4):
                    assert cn.readline() == b"VALUE herd 0 5\r\n"
                    assert cn.read_exact(7) == b"hello\r\n"
                    assert cn.readline() == b"END\r\n"
                cn.close()
            gets = int(mc_stats(pool[0])["cmd_get"]) - before
            assert 1 <= gets <= workers, gets
            s = st.stats()
            # The first get of each connection joined the fetch; the rest
            # found the value kept locally.
            assert int(s["upstream_coalesced"]) >= 250 - workers, s
        finally:
            st.stop()


def held_fetch(strata_bin, pool, tmp_path, key, value, write):
    """strata (one worker) over a relay to pool[0], which has `key` =
    `value`: one connection's get of `key` is sent while the relay holds the
    server's replies back, then another connection sends `write`; then the
    relay lets go. Returns (strata, reader, writer, the writer's reply);
    the reader's get has been read (either answer is right: it began before
    the write)."""
    c = Conn.to(pool[0])
    assert request(c, b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(value), value)) == \
        b"STORED\r\n"
    c.close()
    relay = Relay(pool[0].port)
    st = Strata(strata_bin, str(tmp_path / "s"), [relay.address], threads=1,
                request_timeout="10s")
    reader, writer = st.conn(), st.conn()
    relay.hold()
    reader.send(b"get %s\r\n" % key.encode())  # the fetch is sent, its reply held
    time.sleep(0.3)
    writer.send(write)
    time.sleep(0.3)
    relay.release()
    line = reader.readline()
    if line.startswith(b"VALUE"):
        reader.read_exact(len(value) + 2)
        line = reader.readline()
    assert line == b"END\r\n"
    return st, relay, reader, writer, writer.readline()


def test_delete_during_a_held_fetch_never_refills(strata_bin, pool, tmp_path):
    st, relay, reader, writer, reply = held_fetch(strata_bin, pool, tmp_path, "race", b"old",
                                                  b"delete race\r\n")
    try:
        assert reply == b"DELETED\r\n"
        # After the delete's reply, nobody reads the old value.
        for _ in range(20):
            assert get(writer, "race") is None
            assert get(reader, "race") is None
        assert int(st.stats()["curr_items"]) == 0
    finally:
        reader.close()
        writer.close()
        st.stop()
        relay.stop()


def test_a_write_while_a_fetch_is_held_is_read_back(strata_bin, pool, tmp_path):
    """A get sent after this pod's own write never joins an older fetch."""
    st, relay, reader, writer, reply = held_fetch(strata_bin, pool, tmp_path, "w", b"old",
                                                  b"set w 0 0 3\r\nnew\r\n")
    try:
        assert reply == b"STORED\r\n"
        for _ in range(10):
            assert get(writer, "w") == b"new"
            assert get(reader, "w") == b"new"
    finally:
        reader.close()
        writer.close()
        st.stop()
        relay.stop()


# ---------------------------------------------------------------- a dead server

def test_a_dead_server_fails_its_keys_only(strata_bin, pool, tmp_path):
    addrs = addresses(pool)
    dead = Server(REFERENCE_MEMCACHED, memory_mb=16, threads=1)
    dead.start()
    dead_addr = f"127.0.0.1:{dead.port}"
    dead.stop()
    dead.close_log()
    st = Strata(strata_bin, str(tmp_path / "s"), addrs + [dead_addr], distribution="modula")
    try:
        c = st.conn()
        ok = failed = 0
        for i in range(200):
            r = request(c, b"set d%d 0 0 1\r\nx\r\n" % i)
            if r == b"STORED\r\n":
                ok += 1
                assert get(c, f"d{i}") == b"x"
            else:
                assert r == b"SERVER_ERROR upstream unavailable\r\n", r
                failed += 1
                assert get(c, f"d{i}") is None
        assert ok > 100 and failed > 20, (ok, failed)
        c.close()
    finally:
        st.stop()


def test_a_stalled_server_times_out(strata_bin, pool, tmp_path):
    with Relay(pool[0].port) as relay:
        st = Strata(strata_bin, str(tmp_path / "s"), [relay.address], threads=1,
                    request_timeout="300ms")
        try:
            c = st.conn()
            assert request(c, b"set t 0 0 1\r\nx\r\n") == b"STORED\r\n"
            relay.hold()
            t0 = time.monotonic()
            assert get(c, "t") is None          # the fetch times out: a miss
            assert request(c, b"set t 0 0 1\r\ny\r\n") == \
                b"SERVER_ERROR upstream unavailable\r\n"
            assert time.monotonic() - t0 < 5
            relay.release()
            # A new connection serves again.
            assert get(c, "t") in (b"x", b"y")
            assert request(c, b"set t 0 0 1\r\nz\r\n") == b"STORED\r\n"
            assert get(c, "t") == b"z"
            c.close()
        finally:
            st.stop()


def test_metrics_per_server(strata_bin, pool, tmp_path):
    import urllib.request
    addrs = addresses(pool)
    mport = free_port()
    st = Strata(strata_bin, str(tmp_path / "s"), addrs, metrics_port=mport)
    try:
        c = st.conn()
        for i in range(60):
            assert request(c, b"set m%d 0 0 1\r\nx\r\n" % i) == b"STORED\r\n"
            assert get(c, f"m{i}") == b"x"
            assert get(c, f"none{i}") is None
        c.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10) as r:
            body = r.read().decode()
        check_metrics_text(body)
        values = {}
        for line in body.splitlines():
            if line.startswith("strata_upstream_requests_total{"):
                labels, v = line.rsplit(" ", 1)
                values[labels] = float(v)
        def total(op, outcome):
            return sum(v for k, v in values.items()
                       if f'op="{op}"' in k and f'outcome="{outcome}"' in k)
        assert total("store", "hit") == 60
        assert total("get", "hit") == 60
        assert total("get", "miss") == 60
        for a in addrs:
            assert f'strata_upstream_connects_total{{server="{a}"}}' in body
            assert f'strata_upstream_request_duration_seconds_count{{server="{a}"}}' in body
        assert "strata_upstream_fetches_total 120" in body
    finally:
        st.stop()


@pytest.mark.parametrize("near_cache_ttl", ["60s", "0s"])
def test_pipelined_gets_are_fetched_ahead(strata_bin, pool, tmp_path, near_cache_ttl):
    addrs = addresses(pool)
    st = Strata(strata_bin, str(tmp_path / "s"), addrs, near_cache_ttl=near_cache_ttl,
                threads=1)
    try:
        c = st.conn()
        keys = [f"ahead:{i}" for i in range(160)]
        for k in keys:
            assert request(c, b"set %s 0 0 %d\r\n%s\r\n" % (k.encode(), len(k), k.encode())) \
                == b"STORED\r\n"
        for r in range(5):
            batch = keys[r * 32:(r + 1) * 32]
            c.send(b"".join(b"get %s\r\n" % k.encode() for k in batch))
            for k in batch:
                assert c.readline() == b"VALUE %s 0 %d\r\n" % (k.encode(), len(k))
                assert c.read_exact(len(k) + 2) == k.encode() + b"\r\n"
                assert c.readline() == b"END\r\n"
        s = st.stats()
        # Each round's first get waits; the rest were fetched ahead, round
        # after round (a key found locally frees its entry).
        assert int(s["upstream_prefetches"]) >= 5 * 20, s
        assert int(s["upstream_fetches"]) <= 160, s
        c.close()
    finally:
        st.stop()
