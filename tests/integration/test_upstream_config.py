"""upstream.* in the configuration file, through the real binary: a good
pool configuration starts strata; a bad one stops it before it serves, with
exit status 2 and a path-qualified message (the placement rules config/
leaves to upstream::Placement included). Nothing here talks to a pool yet:
the connections are issue 23's other half."""
import subprocess

import pytest

pytestmark = pytest.mark.strata_only


def write_config(tmp_path, text):
    path = tmp_path / "strata.yaml"
    path.write_text(text)
    return path


def start_fails(strata_bin, tmp_path, text):
    path = write_config(tmp_path, text)
    done = subprocess.run([strata_bin, "--config", str(path), "-p", "0",
                           "--metrics-listen", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    return done.stderr


def test_a_pool_configuration_starts(server_factory, tmp_path):
    path = write_config(tmp_path, (
        "upstream:\n"
        "  servers: [127.0.1.1:11211, \"127.0.1.2:22122:2 cache-b\"]\n"
        "  distribution: ketama\n"
        "  near_cache_ttl: 0\n"
        "  forward_flush: true\n"
        "  connections_per_server: 2\n"))
    server = server_factory(extra_args=["--config", str(path)])
    with server.connect() as sock:
        sock.sendall(b"version\r\n")
        assert sock.recv(100).startswith(b"VERSION ")


@pytest.mark.parametrize("text, message", [
    ("upstream:\n  servers: [a:1, a:1]\n",
     "strata: upstream.servers[1]: a:1 is listed twice (also upstream.servers[0])"),
    ("upstream:\n  distribution: jump\n  servers: [a:1, b:1:3]\n",
     "strata: upstream.servers[1]: weight 3: upstream.distribution jump has no weights"),
    ("upstream:\n  servers: [\"cache:11211\", \"b:1 cache\"]\n",
     "strata: upstream.servers[1]: hashes by the same name \"cache\" as upstream.servers[0]"),
    ("upstream:\n  distribution: jump\n  servers: [h01:1, h1:1]\n",
     "strata: upstream.servers[1]: h1:1 and upstream.servers[0] (h01:1) are equal in the "
     "natural order of jump"),
    ("upstream:\n  near_cache_ttl: forever\n",
     "strata: upstream.near_cache_ttl: expected a duration like 60s, at most 30d, or 0"),
    ("upstream:\n  servers: [a:1]\n  probe_interval: 2s\n  probe_interval_max: 1s\n",
     "strata: upstream.probe_interval_max: must be at least upstream.probe_interval (2000ms), "
     "got 1000ms"),
    ("upstream:\n  probe_interval: 20s\n",
     "strata: upstream.probe_interval_max: must be at least upstream.probe_interval (20000ms), "
     "got 10000ms"),
])
def test_a_bad_pool_configuration_stops_strata(strata_bin, tmp_path, text, message):
    stderr = start_fails(strata_bin, tmp_path, text)
    assert stderr.startswith(message), stderr
