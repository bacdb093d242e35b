"""memcached's own test suite (t/*.t of Debian's memcached source package)
against the server under test.

memcached's t/lib/MemcachedTest.pm runs the tests against an external server
when T_MEMD_USE_DAEMON=host:port is set. Each test in RUN gets a fresh server
(the conftest factory: a free port on 127.0.0.1, -m 64 -t 2, stopped by PID
at the end) and must pass all of its planned checks. RUN holds every
text-protocol (classic and meta) test that memcached 1.6.18 itself passes when started
and run this way (STRATA_BIN=/usr/bin/memcached runs this file against it);
NOT_APPLICABLE says why each other test is left out, and
test_every_test_is_accounted_for keeps the two lists complete. The README's
table is a copy of NOT_APPLICABLE.

test_memcached_t_through_the_pool runs the same tests against a strata in
front of one memcached (upstream.servers), but for NOT_THROUGH_THE_POOL.

The suite is fetched once by scripts/memcached-tests.sh into
$STRATA_MEMCACHED_T_DIR (CMake: <build>/memcached-t), from deb.debian.org;
about a second, and nothing after that.
"""

import os
import re
import subprocess
import sys

import pytest

from conftest import REFERENCE_MEMCACHED, Server
from test_upstream import Strata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FETCH = os.path.join(ROOT, "scripts", "memcached-tests.sh")
T_TIMEOUT_S = 120  # the slowest (getset.t, chunked-items.t) take about 8 s

RUN = [
    "bogus-commands", "cas", "chunked-items", "flags", "getandtouch",
    "getset", "incrdecr", "issue_104", "issue_108", "issue_14", "issue_152",
    "issue_192", "issue_29", "issue_3", "issue_41", "issue_42", "issue_68",
    "issue_70", "malicious-commands", "metaget", "multiversioning", "noreply",
    "quit", "stats-detail", "strtol-testing", "touch",
]

# Why each other test is not run. "memcached fails it here" means that
# memcached 1.6.18 started as these tests start servers fails it too, mostly
# because T_MEMD_USE_DAEMON ignores the options the test would start its
# server with.
NOT_APPLICABLE = {
    "00-startup": "starts servers with bad command-line options; memcached "
                  "fails it here",
    "64bit": "memcached's slab preallocation over 4 GB (-m 4098 -M)",
    "ascii-auth": "ASCII authentication (-Y): strata has none",
    "binary": "binary protocol",
    "binary-extstore": "binary protocol and extstore",
    "binary-get": "binary protocol",
    "binary-sasl": "binary protocol and SASL",
    "chunked-extstore": "extstore internals (-o ext_path)",
    "conn-limits": "memcached's read buffer memory limit "
                   "(-o read_buf_mem_limit)",
    "daemonize": "daemon mode and pid file (-d -P)",
    "dash-M": "-M (errors instead of evictions): strata has no such mode",
    "dyn-maxbytes": "slab page moves (-o slab_automove_window); memcached "
                    "fails it here",
    "error-extstore": "extstore internals (-o ext_path)",
    "evictions": "counts evictions in memcached's slab class 31 (strata "
                 "reports one class, 1) and needs -m 3",
    "expirations": "debugtime, a command of memcached-debug builds that moves "
                   "the server's clock",
    "extstore": "extstore internals (-o ext_path)",
    "extstore-buckets": "extstore internals (-o ext_path)",
    "extstore-jbod": "extstore internals (-o ext_path)",
    "flush-all": "its last checks restart the server with -F and -C; "
                 "memcached fails it here",
    "idle-timeout": "-o idle_timeout: strata has none",
    "issue_140": "memcached skips it (skip_all)",
    "issue_163": "counts reclaims in memcached's slab class 31 (strata "
                 "reports one class, 1)",
    "issue_183": "memcached's LRU crawler reclaiming in its own time "
                 "(-o no_modern); memcached fails it here",
    "issue_22": "counts evictions in memcached's slab class 31 and needs "
                "-m 3; memcached fails it here",
    "issue_260": "memcached skips it (skip_all)",
    "issue_50": "binary protocol (-B binary)",
    "issue_61": "-R (requests per event) and its conn_yields",
    "issue_67": "starts servers with port and interface options",
    "item_size_max": "starts servers with several -I values; memcached "
                     "fails it here",
    "line-lengths": "checks memcached's doc/protocol.txt, not a server",
    "lru": "memcached's segmented LRU (-o no_modern)",
    "lru-crawler": "memcached's LRU crawler internals (-o no_modern); "
                   "memcached fails it here",
    "lru-maintainer": "memcached's LRU maintainer (-o lru_maintainer)",
    "maxconns": "extstore (-o ext_path) and memcached's own file "
                "descriptors; memcached fails it here",
    "misbehave": "memcached's seccomp sandbox (-o drop_privileges and the "
                 "debug-only misbehave command)",
    "proxy": "memcached's proxy (not built into Debian's memcached; skipped)",
    "refhang": "memcached skips it (skip_all)",
    "restart": "memcached's restart from a memory file (-e)",
    "shutdown": "starts servers with -A and restarts them; memcached fails "
                "it here",
    "slabhang": "memcached skips it (skip_all)",
    "slabs-reassign-chunked": "slab page moves",
    "slabs-reassign2": "slab page moves",
    "slabs_reassign": "slab page moves",
    "ssl_cert_refresh": "TLS",
    "ssl_ports": "TLS",
    "ssl_proto_version": "TLS",
    "ssl_session_resumption": "TLS",
    "ssl_settings": "TLS",
    "ssl_verify_modes": "TLS",
    "stats": "expects the 83 stats, unix socket and 1 KiB item limit of "
             "the server it would start (-I 1024 -o no_lru_crawler,...); "
             "memcached fails it here (stats cachedump, which it used to "
             "hang on, is in test_differential.py)",
    "stats-conns": "unix socket (-s) and 0.0.0.0 listeners",
    "udp": "UDP",
    "unixsocket": "a server on a unix socket only (-s)",
    "watcher": "watchers: strata has no log stream (watch answers as "
               "memcached -W does)",
    "watcher_connid": "watchers: strata has no log stream",
    "whitespace": "checks memcached's git tree (skips outside one)",
}


@pytest.fixture(scope="session")
def t_tree():
    cache = os.environ.get("STRATA_MEMCACHED_T_DIR") or \
        os.path.join(ROOT, "build", "memcached-t")
    try:
        out = subprocess.run([FETCH, cache], check=True, timeout=300,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"{FETCH} {cache} failed:\n{e.stderr.decode()[-3000:]}",
                    pytrace=False)
    return out.stdout.decode().strip().splitlines()[-1]


def test_every_test_is_accounted_for(t_tree):
    names = {f[:-2] for f in os.listdir(os.path.join(t_tree, "t"))
             if f.endswith(".t")}
    listed = set(RUN) | set(NOT_APPLICABLE)
    assert not set(RUN) & set(NOT_APPLICABLE)
    assert names - listed == set(), "tests in neither list"
    assert listed - names == set(), "listed tests that do not exist"
    assert all(NOT_APPLICABLE.values())


# Through the upstream pool (strata in front of one memcached 1.6.18, near
# cache on): every test of RUN but these, whose checks read strata's own
# memory (a pool keeps nothing locally that its gets did not fetch).
NOT_THROUGH_THE_POOL = {
    "issue_29": "counts the local slab class's used chunks after sets "
                "(they went to the pool)",
    "issue_42": "reads the local items' mem_requested after sets (they went "
                "to the pool)",
}


@pytest.fixture
def pool_server(strata_bin, tmp_path):
    """A strata in front of a fresh memcached (started as the `pool`
    fixture of test_upstream.py does)."""
    if not os.access(REFERENCE_MEMCACHED, os.X_OK):
        pytest.skip("no reference memcached")
    upstream = Server(REFERENCE_MEMCACHED, memory_mb=64, threads=2)
    upstream.start()
    st = None
    try:
        st = Strata(strata_bin, str(tmp_path / "s"), [f"127.0.0.1:{upstream.port}"],
                    request_timeout="5s")
        yield st.server
    finally:
        if st is not None:
            st.stop()
        upstream.stop()
        upstream.close_log()


@pytest.mark.parametrize("name", RUN)
def test_memcached_t(t_tree, strata_bin, server_factory, name):
    run_t(t_tree, strata_bin, server_factory(memory_mb=64, threads=2), name)


@pytest.mark.strata_only
@pytest.mark.parametrize("name", [n for n in RUN if n not in NOT_THROUGH_THE_POOL])
def test_memcached_t_through_the_pool(t_tree, strata_bin, pool_server, name):
    run_t(t_tree, strata_bin, pool_server, name)


def run_t(t_tree, strata_bin, srv, name):
    env = dict(os.environ, T_MEMD_USE_DAEMON=f"{srv.host}:{srv.port}",
               MEMCACHED_T_SERVER=strata_bin)
    try:
        proc = subprocess.run(["perl", f"t/{name}.t"], cwd=t_tree, env=env,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=T_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        tail = (e.stdout or b"").decode(errors="replace")[-3000:]
        pytest.fail(f"t/{name}.t still running after {T_TIMEOUT_S} s:\n"
                    f"{tail}", pytrace=False)
    out = proc.stdout.decode(errors="replace")
    plan = re.search(r"^1\.\.(\d+)\s*$", out, re.M)
    oks = len(re.findall(r"^ok \d+", out, re.M))
    failed = re.findall(r"^not ok .*$", out, re.M)
    report = "\n".join(out.splitlines()[-40:])
    assert proc.returncode == 0 and not failed, \
        f"t/{name}.t exit {proc.returncode}; {len(failed)} failed:\n{report}"
    # Every planned check ran (a skipped or cut-short test does not pass).
    assert plan and int(plan.group(1)) > 0 and oks == int(plan.group(1)), \
        f"t/{name}.t: plan {plan and plan.group(0)!r}, {oks} ok\n{report}"
    assert srv.alive(), f"the server died during t/{name}.t:\n{srv.output()}"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__] + sys.argv[1:]))
