"""Metrics: strata's /metrics, /healthz and /readyz, scraped by a real
Prometheus server (Debian's `prometheus`), checked with promtool.

A strata with metrics on a free port and a Prometheus scraping it every
second, both on loopback, are started once for the module. The tests drive
a small, exactly counted load with pymemcache and check with
`promtool query instant` that the counters moved as the load says (sets,
gets, hits and misses by tier) and agree with `stats`; that every query of
the Grafana dashboard (helm/strata/dashboards/strata.json) and every alert
rule (helm/strata/alerts/strata-rules.yaml) has data; that
`promtool check metrics`, `check rules` and `test rules` pass; and that
/healthz and /readyz answer as documented, including 503 while draining.

Every process is stopped by PID (SIGTERM, wait, SIGKILL); every wait is
bounded.
"""

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from pymemcache.client.base import Client

from conftest import Server, free_port

pytestmark = pytest.mark.strata_only

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(REPO, "helm", "strata", "dashboards", "strata.json")
RULES = os.path.join(REPO, "helm", "strata", "alerts", "strata-rules.yaml")
RULES_TEST = os.path.join(REPO, "tests", "metrics", "alerts_test.yaml")
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
JOB = "strata"
WAIT_S = 30.0           # bound on every poll loop
PROMTOOL_TIMEOUT_S = 20.0

# The exactly counted load.
SETS = 120
GET_HITS = 90           # single-key gets of stored keys
GET_MISSES = 30         # single-key gets of absent keys
MULTI_HITS, MULTI_MISSES = 5, 3   # one get_many of 8 keys


def need_prometheus():
    for tool in (PROMETHEUS, PROMTOOL):
        if not os.access(tool, os.X_OK):
            pytest.skip(f"{tool} not installed (Debian package prometheus)")


def http_get(url, timeout=5.0):
    """(status, body) of a GET; status 0 when the connection is refused."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return 0, ""


def stop_pid(proc, timeout=10.0):
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    return proc.returncode


def start_strata(strata_bin, metrics_port, extra_args=()):
    srv = Server(strata_bin, memory_mb=64, threads=2,
                 extra_args=["--metrics-listen", f"127.0.0.1:{metrics_port}",
                             *extra_args])
    srv.metrics_url = f"http://127.0.0.1:{metrics_port}"
    return srv.start()


class Prometheus:
    """A Prometheus server scraping one target every second."""

    def __init__(self, tmp_dir, target):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = os.path.join(tmp_dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n"
                    "  scrape_interval: 1s\n"
                    "  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    f"rule_files: ['{RULES}']\n"
                    "scrape_configs:\n"
                    f"  - job_name: {JOB}\n"
                    "    static_configs:\n"
                    f"      - targets: ['{target}']\n")
        self.log = open(os.path.join(tmp_dir, "prometheus.log"), "wb")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(tmp_dir, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + WAIT_S
        while http_get(self.url + "/-/ready", timeout=1.0)[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus did not become ready: {self.output()}")
            time.sleep(0.1)

    def output(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    def query(self, expr):
        """Instant query through promtool: [(labels dict, float)]."""
        res = subprocess.run([PROMTOOL, "query", "instant", "-o", "json", self.url, expr],
                             capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S)
        assert res.returncode == 0, f"promtool query {expr!r}: {res.stderr}"
        data = json.loads(res.stdout) if res.stdout.strip() else []
        if isinstance(data, dict):  # a scalar
            return [({}, float(data["value"][1]))]
        return [(s.get("metric", {}), float(s["value"][1])) for s in data]

    def value(self, expr):
        """The single value of `expr`, or None if it has no data."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: {result}"
        return result[0][1] if result else None

    def wait_for(self, expr, expected):
        deadline = time.monotonic() + WAIT_S
        while True:
            got = self.value(expr)
            if got == expected:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr} = {got}, expected {expected} "
                                     f"within {WAIT_S} s")
            time.sleep(0.5)

    def stop(self):
        stop_pid(self.process)
        self.log.close()


@pytest.fixture(scope="module")
def stack(strata_bin, tmp_path_factory):
    """(strata Server with .metrics_url, Prometheus) for the module."""
    need_prometheus()
    tmp = str(tmp_path_factory.mktemp("metrics"))
    # With an SSD tier, so the dashboard's SSD panels have data too. Its
    # file sits next to the binary: /tmp may be a tmpfs without O_DIRECT.
    ssd_dir = os.path.join(os.path.dirname(os.path.abspath(strata_bin)), "metrics-ssd-tmp")
    os.makedirs(ssd_dir, exist_ok=True)
    ssd_file = os.path.join(ssd_dir, f"cache-{os.getpid()}.bin")
    srv = start_strata(strata_bin, free_port(),
                       ["--ssd-path", ssd_file, "--ssd-size", "64MiB"])
    prom = None
    try:
        prom = Prometheus(tmp, srv.metrics_url.split("//")[1])
        yield srv, prom
    finally:
        if prom is not None:
            prom.stop()
        srv.stop()
        srv.close_log()
        if os.path.exists(ssd_file):
            os.unlink(ssd_file)


@pytest.fixture(scope="module")
def loaded(stack):
    """The counted load, applied once, and scraped."""
    srv, prom = stack
    client = Client(srv.address, timeout=5, connect_timeout=5)
    try:
        for i in range(SETS):
            assert client.set(f"k{i}", f"value-{i}".encode(), noreply=False)
        for i in range(GET_HITS):
            assert client.get(f"k{i}") == f"value-{i}".encode()
        for i in range(GET_MISSES):
            assert client.get(f"absent{i}") is None
        keys = [f"k{i}" for i in range(MULTI_HITS)] + \
               [f"absent-m{i}" for i in range(MULTI_MISSES)]
        assert len(client.get_many(keys)) == MULTI_HITS
        stats = {k.decode(): v for k, v in client.stats().items()}
    finally:
        client.close()
    prom.wait_for(f'memcached_commands_total{{job="{JOB}",command="set",status="hit"}}',
                  SETS)
    prom.wait_for(f'memcached_commands_total{{job="{JOB}",command="get",status="miss"}}',
                  GET_MISSES + MULTI_MISSES)
    return srv, prom, stats


def test_health_endpoints(stack):
    srv, _ = stack
    assert http_get(srv.metrics_url + "/healthz") == (200, "ok\n")
    assert http_get(srv.metrics_url + "/readyz") == (200, "ready\n")
    assert http_get(srv.metrics_url + "/nothing")[0] == 404


def test_promtool_check_metrics_is_silent(loaded):
    srv, _, _ = loaded
    status, body = http_get(srv.metrics_url + "/metrics")
    assert status == 200
    res = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                         text=True, timeout=PROMTOOL_TIMEOUT_S)
    assert res.returncode == 0 and res.stdout == "" and res.stderr == "", \
        res.stdout + res.stderr


def test_counters_follow_the_load(loaded):
    _, prom, _ = loaded
    sel = f'job="{JOB}"'
    hits = GET_HITS + MULTI_HITS
    misses = GET_MISSES + MULTI_MISSES
    assert prom.value(f'memcached_commands_total{{{sel},command="set",status="hit"}}') == SETS
    assert prom.value(f'memcached_commands_total{{{sel},command="get",status="hit"}}') == hits
    assert prom.value(f'memcached_commands_total{{{sel},command="get",status="miss"}}') == misses
    assert prom.value(f'strata_tier_hits_total{{{sel},tier="ram"}}') == hits
    assert prom.value(f'strata_tier_misses_total{{{sel},tier="ram"}}') == misses
    assert prom.value(f'memcached_current_items{{{sel}}}') == SETS
    assert prom.value(f'strata_tier_items{{{sel},tier="ram"}}') == SETS
    assert prom.value(f'memcached_items_total{{{sel}}}') == SETS
    assert prom.value(f'memcached_up{{{sel}}}') == 1
    assert prom.value(f'up{{{sel}}}') == 1
    assert prom.value(f'strata_ready{{{sel}}}') == 1
    assert prom.value(f'strata_workers{{{sel}}}') == 2
    assert prom.value(f'memcached_max_connections{{{sel}}}') == 4096
    # Latency: one observation per command. The single-key gets of stored
    # keys were served by RAM, the others missed; get_many hit.
    def count(command, tier):
        return prom.value(f'strata_request_duration_seconds_count'
                          f'{{{sel},command="{command}",tier="{tier}"}}')
    assert count("set", "none") == SETS
    assert count("get", "ram") == GET_HITS + 1
    assert count("get", "miss") == GET_MISSES
    le_inf = prom.value(f'strata_request_duration_seconds_bucket'
                        f'{{{sel},command="set",tier="none",le="+Inf"}}')
    assert le_inf == SETS
    assert prom.value(f'strata_request_duration_seconds_sum'
                      f'{{{sel},command="set",tier="none"}}') > 0
    assert prom.value(f'memcached_read_bytes_total{{{sel}}}') > 0
    assert prom.value(f'memcached_written_bytes_total{{{sel}}}') > 0
    version = prom.query(f'memcached_version{{{sel}}}')
    assert len(version) == 1 and version[0][0]["version"].endswith("-strata-0.1.0")


def test_stats_and_metrics_agree(loaded):
    """The same counters: `stats` taken after the load equals the scrape."""
    _, prom, stats = loaded
    sel = f'job="{JOB}"'
    assert int(stats["get_hits"]) == \
        prom.value(f'memcached_commands_total{{{sel},command="get",status="hit"}}')
    assert int(stats["get_misses"]) == \
        prom.value(f'memcached_commands_total{{{sel},command="get",status="miss"}}')
    assert int(stats["cmd_set"]) == \
        prom.value(f'memcached_commands_total{{{sel},command="set",status="hit"}}')
    assert int(stats["curr_items"]) == prom.value(f'memcached_current_items{{{sel}}}')
    assert int(stats["limit_maxbytes"]) == prom.value(f'memcached_limit_bytes{{{sel}}}')
    assert int(stats["bytes"]) == prom.value(f'memcached_current_bytes{{{sel}}}')
    assert int(stats["total_connections"]) == \
        prom.value(f'memcached_connections_total{{{sel}}}')


# The dashboard row and the alert that read the upstream pool's metrics,
# which only a strata with upstream.servers exports: the module's strata has
# no pool, so they are left out of the tests over it and checked by
# test_upstream_row_and_alert_have_data against a strata with a pool.
UPSTREAM_ROW = "Upstream pool"
UPSTREAM_ALERTS = {"StrataUpstreamServerDown", "StrataUpstreamMembershipStale"}


def dashboard_queries(row=None):
    """(panel title, expr) of every query; with `row`, only that row's,
    else all but the upstream row's."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    queries = []
    current = None
    for panel in dash["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
        if (current == row) if row is not None else (current != UPSTREAM_ROW):
            for target in panel.get("targets", []):
                queries.append((panel["title"], target["expr"]))
    return dash, queries


def grafana_to_promql(expr):
    """Replaces the dashboard's variables with what they select here."""
    return (expr.replace("$__rate_interval", "20s")
            .replace("$job", JOB).replace("$instance", ".+"))


class BackgroundLoad:
    """Sets, hits and misses at a low rate until stopped."""

    def __init__(self, address):
        self.address = address
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.error = None

    def run(self):
        client = Client(self.address, timeout=5, connect_timeout=5)
        i = 0
        try:
            while not self.stop_event.is_set():
                client.set(f"bg{i % 50}", b"x" * 100, noreply=False)
                client.get(f"bg{i % 50}")
                client.get(f"bg-absent{i}")
                client.get_many([f"bg{i % 50}", f"bg-absent-m{i}"])
                i += 1
                time.sleep(0.01)
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            client.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(10)


def test_every_dashboard_query_has_data(loaded):
    srv, prom, _ = loaded
    dash, queries = dashboard_queries()
    assert len(queries) >= 20
    # The variables' own queries: label_values(memcached_up, job|instance).
    series = prom.query("memcached_up")
    assert [s[0].get("job") for s in series] == [JOB]
    assert series[0][0].get("instance")
    with BackgroundLoad(srv.address) as load:
        # Let a few scrapes see the load, so rates over 20 s are not zero;
        # on a busy machine, give each query until the deadline.
        time.sleep(5)
        deadline = time.monotonic() + WAIT_S
        empty, nan = [], []
        for title, expr in queries:
            while True:
                result = prom.query(grafana_to_promql(expr))
                ok = result and not all(math.isnan(v) for _, v in result)
                if ok or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            if not result:
                empty.append(f"{title}: {expr}")
            elif not ok:
                nan.append(f"{title}: {expr}")
        # The tier panels split by tier: RAM is there, hitting and missing.
        by_tier = prom.query(grafana_to_promql(
            [e for t, e in queries if t == "Hit ratio by tier"][0]))
    assert load.error is None, load.error
    assert not empty, "queries without data:\n" + "\n".join(empty)
    assert not nan, "queries that are only NaN:\n" + "\n".join(nan)
    ratios = {labels["tier"]: value for labels, value in by_tier}
    assert set(ratios) <= {"ram", "ssd"} and "ram" in ratios
    assert 0 < ratios["ram"] < 1


def test_alert_rules_load_and_have_data(loaded):
    _, prom, _ = loaded
    deadline = time.monotonic() + WAIT_S
    while True:
        status, body = http_get(prom.url + "/api/v1/rules")
        assert status == 200
        groups = json.loads(body)["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("lastEvaluation", "").startswith("2") and
                         not r["lastEvaluation"].startswith("0001") for r in rules):
            break
        assert time.monotonic() < deadline, f"rules never evaluated: {rules}"
        time.sleep(0.5)
    names = {r["name"] for r in rules}
    assert {"StrataDown", "StrataNotReady", "StrataHitRatioCollapse",
            "StrataConnectionsNearLimit", "StrataRejectingConnections",
            "StrataStoresFailing"} <= names
    assert UPSTREAM_ALERTS <= names
    missing = []
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
        if rule["name"] in UPSTREAM_ALERTS:
            continue  # no pool here: test_upstream_row_and_alert_have_data
        # Every series an alert reads exists (a healthy strata fires none).
        query = rule["query"]
        metrics = set(re.findall(r"\b((?:memcached|strata)_[a-z_]+)\b", query))
        if re.search(r"\bup\{", query):
            metrics.add("up")
        for metric in sorted(metrics):
            if not prom.query(f'{metric}{{job="{JOB}"}}'):
                missing.append(f"{rule['name']}: {metric}")
    assert not missing, "alert inputs without data:\n" + "\n".join(missing)
    firing = prom.query('ALERTS{alertstate="firing"}')
    assert firing == [], firing


def test_promtool_rules(tmp_path):
    need_prometheus()
    res = subprocess.run([PROMTOOL, "check", "rules", RULES], capture_output=True, text=True,
                         timeout=PROMTOOL_TIMEOUT_S)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run([PROMTOOL, "test", "rules", RULES_TEST], capture_output=True,
                         text=True, timeout=PROMTOOL_TIMEOUT_S)
    assert res.returncode == 0, res.stdout + res.stderr


def test_not_ready_while_draining(strata_bin, tmp_path):
    """SIGTERM: /readyz turns 503 while owed replies drain; /healthz stays
    200 until the process exits."""
    config = tmp_path / "drain.yaml"
    config.write_text("server:\n  drain_timeout: 8s\n")
    metrics_port = free_port()
    srv = start_strata(strata_bin, metrics_port, ["-C", str(config), "-I", "2m"])
    try:
        # Ready follows listening by a moment: poll, as a probe would.
        deadline = time.monotonic() + 5
        while (http_get(srv.metrics_url + "/readyz")[0] != 200
               and time.monotonic() < deadline):
            time.sleep(0.05)
        assert http_get(srv.metrics_url + "/readyz")[0] == 200
        client = Client(srv.address, timeout=5, connect_timeout=5)
        client.set("big", b"v" * (1 << 20), noreply=False)
        client.close()
        # A client that asks for 200 MiB and never reads: strata owes replies.
        s = srv.connect()
        s.sendall(b"get " + b" ".join([b"big"] * 200) + b"\r\n")
        time.sleep(0.3)
        os.kill(srv.pid, signal.SIGTERM)
        deadline = time.monotonic() + WAIT_S
        while http_get(srv.metrics_url + "/readyz")[0] != 503:
            assert time.monotonic() < deadline, "readyz never turned 503"
            time.sleep(0.05)
        assert srv.alive(), "exited before the drain timeout"
        assert http_get(srv.metrics_url + "/readyz") == (503, "not ready\n")
        assert http_get(srv.metrics_url + "/healthz") == (200, "ok\n")
        status, body = http_get(srv.metrics_url + "/metrics")
        assert status == 200 and "\nstrata_ready 0\n" in body
        srv.process.wait(WAIT_S)
        assert srv.process.returncode == 0
        s.close()
        assert http_get(srv.metrics_url + "/healthz")[0] == 0
    finally:
        srv.stop()
        srv.close_log()


def test_taken_metrics_port_refuses_to_start(strata_bin):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        proc = subprocess.run(
            [strata_bin, "-p", str(free_port()), "-l", "127.0.0.1",
             "--metrics-listen", f"127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=WAIT_S)
    finally:
        holder.close()
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} for metrics" in proc.stderr, proc.stderr
    assert "Address already in use" in proc.stderr, proc.stderr


def test_metrics_disabled(strata_bin, tmp_path):
    config = tmp_path / "off.yaml"
    metrics_port = free_port()
    config.write_text(f"metrics:\n  enabled: false\n  listen: 127.0.0.1:{metrics_port}\n")
    srv = Server(strata_bin, extra_args=["-C", str(config)]).start()
    try:
        client = Client(srv.address, timeout=5, connect_timeout=5)
        assert client.set("a", b"1", noreply=False)
        assert client.get("a") == b"1"
        client.close()
        assert http_get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=2)[0] == 0
    finally:
        srv.stop()
        srv.close_log()


def queries_without_data(prom, queries):
    """The queries that stay empty or NaN until the deadline."""
    deadline = time.monotonic() + WAIT_S
    bad = []
    for title, expr in queries:
        while True:
            result = prom.query(grafana_to_promql(expr))
            ok = result and not all(math.isnan(v) for _, v in result)
            if ok or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if not ok:
            bad.append(f"{title}: {expr}")
    return bad


def test_upstream_row_and_alert_have_data(strata_bin, tmp_path):
    """A strata with a pool of one memcached: every query of the dashboard's
    upstream row has data, the alert's input exists and does not fire."""
    need_prometheus()
    from conftest import REFERENCE_MEMCACHED
    if not os.access(REFERENCE_MEMCACHED, os.X_OK):
        pytest.skip("no reference memcached")
    mc = Server(REFERENCE_MEMCACHED, memory_mb=16, threads=1).start()
    srv = prom = None
    try:
        config = tmp_path / "strata.yaml"
        config.write_text("upstream:\n"
                          f"  servers: [\"127.0.0.1:{mc.port}\"]\n")
        srv = start_strata(strata_bin, free_port(), ["--config", str(config)])
        prom = Prometheus(str(tmp_path), srv.metrics_url.split("//")[1])
        dash, queries = dashboard_queries(UPSTREAM_ROW)
        assert len(queries) >= 5
        with BackgroundLoad(srv.address) as load:
            time.sleep(5)
            bad = queries_without_data(prom, queries)
        assert load.error is None, load.error
        assert not bad, "upstream queries without data:\n" + "\n".join(bad)
        sel = f'job="{JOB}"'
        states = {labels["state"]: v for labels, v in
                  prom.query(f"strata_upstream_server_state{{{sel}}}")}
        assert states == {"up": 1.0, "down": 0.0, "probing": 0.0, "leaving": 0.0}, states
        with open(RULES) as f:
            assert "strata_upstream_server_state" in f.read()
        assert prom.query('ALERTS{alertname="StrataUpstreamServerDown"}') == []
    finally:
        if prom is not None:
            prom.stop()
        if srv is not None:
            srv.stop()
            srv.close_log()
        mc.stop()
        mc.close_log()

