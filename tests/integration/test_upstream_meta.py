"""The meta protocol through the upstream pool, against memcached 1.6.18.

With a pool, strata sends mg ms md ma to the key's server as the client
wrote them and passes the reply on byte for byte, so the owning server
decides leases (N, R), stale marks (I) and win tokens for every pod. A plain
mg (only v f c k O q s b) is answered from the local tiers when they hold
the key (a near-cache copy a classic get filled).

* Differential: test_meta's seeded generator of meta streams (valid and
  malformed, quiet mode, opaques, base64 keys, leases) goes to memcached and
  to a strata in front of one fresh memcached; the replies must be
  byte-identical (CAS uniques mapped per server, clocks masked).
* Leases across pods: concurrent `mg lease v c N30` split over two stratas
  in front of the same pool give exactly one W; the stale/win sequence
  after `md lease I` is memcached's.
* Near cache: a plain mg is served locally after a classic get filled the
  copy (the pool sees no request); an mg with other flags goes to the pool.
* A classic get of an item the pool marked stale is served (as memcached's
  get serves it) but not kept, and the win token memcached hands that mg
  is given back: the next meta client wins it.
* Failures: with the owning server dead, a plain mg is a miss (EN), a
  lease or write a SERVER_ERROR; no hang.
"""

import contextlib
import os

import pytest

from conftest import REFERENCE_MEMCACHED, Server
from mcraw import Conn
from test_meta import (BATCHES, assert_no_sanitizer_report, check_leases,  # noqa: F401
                       concurrent_vivify, run_differential)
from test_upstream import Strata, addresses, get, mc_stats, pool, request  # noqa: F401

pytestmark = pytest.mark.strata_only


def owner(servers, key):
    """The server of `servers` that holds `key`."""
    for srv in servers:
        with Conn.to(srv) as c:
            c.send(b"mg %s\r\n" % key)
            if c.readline().startswith(b"HD"):
                return srv
    return None


@pytest.mark.parametrize("seed,near_cache_ttl", [(0, "60s"), (1, "0s")])
def test_meta_replies_through_the_pool_match_memcached(strata_bin, pool, tmp_path, seed,
                                                       near_cache_ttl):
    ref = Server(REFERENCE_MEMCACHED, memory_mb=64, threads=2)
    ref.start()
    st = Strata(strata_bin, str(tmp_path / "s"), addresses(pool)[:1],
                near_cache_ttl=near_cache_ttl)
    try:
        with Conn.to(ref) as mc, st.conn() as sc:
            # Classic gets would fill the near cache and, on a key marked
            # stale, give back the win token memcached's own get leaves out
            # (test_a_classic_get_gives_a_stale_items_win_back).
            run_differential(mc, sc, seed * 53 + 7, classic_gets=False)
        assert_no_sanitizer_report(st.server)
    finally:
        st.stop()
        ref.stop()
        ref.close_log()


def test_one_lease_for_the_whole_fleet(strata_bin, pool, tmp_path):
    """Two pods in front of one pool: one W among all their mg N."""
    a = Strata(strata_bin, str(tmp_path / "a"), addresses(pool))
    b = Strata(strata_bin, str(tmp_path / "b"), addresses(pool))
    try:
        replies = concurrent_vivify([a.server, b.server], b"fleet", clients=32)
        wins = [r for r in replies if r.rstrip().endswith(b" W")]
        assert len(wins) == 1, replies
        assert all(r.startswith(b"VA 0 c") for r in replies), replies
        cas = int(wins[0].split()[2][1:])
        # The winner recaches it (with its CAS), and both pods read it.
        with a.conn() as ca, b.conn() as cb:
            assert request(ca, b"ms fleet 5 C%d T100\r\nvalue\r\n" % cas) == b"HD\r\n"
            for c in (ca, cb):
                assert request(c, b"mg fleet v\r\n", 2) == b"VA 5\r\nvalue\r\n"
            # Marked stale through one pod: the next mg anywhere wins, the
            # one after sees the win handed out.
            assert request(ca, b"md fleet I T30\r\n") == b"HD\r\n"
            assert request(cb, b"mg fleet s v\r\n", 2) == b"VA 5 s5 X W\r\nvalue\r\n"
            assert request(ca, b"mg fleet s v\r\n", 2) == b"VA 5 s5 Z X\r\nvalue\r\n"
        # A single pod through the pool, as test_meta checks memcached.
        check_leases(a.server)
        assert_no_sanitizer_report(a.server)
        assert_no_sanitizer_report(b.server)
    finally:
        a.stop()
        b.stop()


@contextlib.contextmanager
def one_pod_with(strata_bin, pool, tmp_path, key, flags, value):
    """A strata (one worker) over `pool`, `key` set through it: yields its
    connection and the server that owns the key."""
    st = Strata(strata_bin, str(tmp_path / "s"), addresses(pool), threads=1)
    try:
        with st.conn() as c:
            assert request(c, b"set %s %d 0 %d\r\n%s\r\n" % (key, flags, len(value), value)) \
                == b"STORED\r\n"
            yield st, c, owner(pool, key)
    finally:
        st.stop()


def test_plain_meta_gets_use_the_near_cache(strata_bin, pool, tmp_path):
    with one_pod_with(strata_bin, pool, tmp_path, b"near", 7, b"hello") as (st, c, srv):
        with Conn.to(srv) as direct:
            want = request(direct, b"mg near v f c s k Oab\r\n", 2)
        assert get(c, "near") == b"hello"          # fills the local copy
        before = int(mc_stats(srv)["cmd_get"])
        assert request(c, b"mg near v f c s k Oab\r\n", 2) == want
        assert request(c, b"mg near v q\r\nmn\r\n", 3) == b"VA 5\r\nhello\r\nMN\r\n"
        assert int(mc_stats(srv)["cmd_get"]) == before, "a plain mg went to the pool"
        # t, h, l and leases are the pool's: they go there.
        assert request(c, b"mg near t v\r\n", 2) == b"VA 5 t-1\r\nhello\r\n"
        assert int(mc_stats(srv)["cmd_get"]) == before + 1
        # A meta write drops the local copy; the next get reads the pool's.
        assert request(c, b"ms near 3 T0 F1\r\nbye\r\n") == b"HD\r\n"
        assert request(c, b"mg near v f\r\n", 2) == b"VA 3 f1\r\nbye\r\n"
        assert request(c, b"ma near\r\n") == \
            b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
        assert request(c, b"md near q\r\nmg near v\r\nmn\r\n", 2) == b"EN\r\nMN\r\n"
        assert get(c, "near") is None


def test_a_classic_get_gives_a_stale_items_win_back(strata_bin, pool, tmp_path):
    with one_pod_with(strata_bin, pool, tmp_path, b"old", 0, b"abc") as (st, c, srv):
        assert get(c, "old") == b"abc"
        assert request(c, b"md old I\r\n") == b"HD\r\n"  # drops the local copy too
        # memcached's get serves a stale item; strata's fetch is an mg,
        # which wins the token: it is given back, and the value not kept.
        assert get(c, "old") == b"abc"
        assert get(c, "old") == b"abc"
        s = st.stats()
        assert int(s["upstream_wins_returned"]) == 2, s
        assert int(s["upstream_not_kept"]) == 2, s
        assert int(s["upstream_fills"]) == 1, s
        # The next meta client, on any pod or straight to the server, wins.
        with Conn.to(srv) as direct:
            assert request(direct, b"mg old v\r\n", 2) == b"VA 3 X W\r\nabc\r\n"
        assert request(c, b"mg old v\r\n", 2) == b"VA 3 Z X\r\nabc\r\n"
        # A classic touch of it gives the token back the same way.
        with Conn.to(srv) as direct:
            assert request(direct, b"md old I\r\n") == b"HD\r\n"
        assert request(c, b"touch old 100\r\n") == b"TOUCHED\r\n"
        with Conn.to(srv) as direct:
            assert request(direct, b"mg old s\r\n") == b"HD s3 X W\r\n"


def test_meta_commands_when_the_owner_is_dead(strata_bin, pool, tmp_path):
    st = Strata(strata_bin, str(tmp_path / "s"), addresses(pool)[:1], threads=1)
    try:
        pool[0].stop()
        with st.conn() as c:
            assert request(c, b"mg gone v Oxy k\r\n") == b"EN Oxy kgone\r\n"
            assert request(c, b"mg gone v q\r\nmn\r\n") == b"MN\r\n"
            unavailable = b"SERVER_ERROR upstream unavailable\r\n"
            assert request(c, b"mg gone v N30\r\n") == unavailable
            assert request(c, b"ms gone 2\r\nab\r\n") == unavailable
            assert request(c, b"md gone q\r\n") == unavailable
            assert request(c, b"ma gone\r\n") == unavailable
            assert request(c, b"mn\r\n") == b"MN\r\n"
    finally:
        st.stop()
