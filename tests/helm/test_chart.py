"""Tests of the Helm chart in helm/strata, without a cluster or a helm binary.

tests/helm/test.sh builds the renderer (tests/helm/render, a `helm template`
stand-in made of Debian's Go packages) and installs the npm validators, then
runs this file with pytest. It renders every example and checks:

- the manifests against the Kubernetes and Prometheus Operator schemas, with
  unknown fields as errors (validate-k8s.cjs), and with yamllint;
- that values.schema.json and the chart's own checks reject each values file
  in tests/helm/bad, with the message that file names;
- the invariants the chart promises: the config checksum rolls pods, native
  sidecar mode, the restricted security context, the probes, the cache volume
  kinds, RAM-only config, config keys strata knows, memory and grace-period
  sizing, monitoring selectors, the seccomp profile, the parent-chart path;
- with a built strata (build/proxy/strata, or $STRATA_BIN): the rendered
  config starts the real binary, the demo app gets hits from it, and the
  chart's seccomp profile lets strata use io_uring while a profile without
  io_uring makes it fall back to its thread pool.
"""

import hashlib
import json
import os
import py_compile
import re
import shutil
import signal
import stat
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import memory_formula  # noqa: E402  (the README's formula, shared with test_memory.py)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHART = REPO / "helm" / "strata"
PARENT = CHART / "examples" / "inference-app"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
BAD = sorted((HERE / "bad").glob("*.yaml"))
RENDER = Path(os.environ.get("HELM_RENDER", HERE / ".build" / "render"))
OUT = HERE / "out"
STRATA_BIN = Path(os.environ.get("STRATA_BIN", REPO / "build" / "proxy" / "strata"))

METRICS_PORT = 9150
MEMCACHED_PORT = 11211


# --- rendering -------------------------------------------------------------

def run_render(*args, chart=CHART, values=(), sets=(), check=True, notes=False):
    """Runs the renderer; returns (documents, stdout, stderr, returncode, notes)."""
    cmd = [str(RENDER)]
    for v in values:
        cmd += ["-f", str(v)]
    for s in sets:
        cmd += ["--set", s]
    notes_file = None
    if notes:
        notes_file = tempfile.NamedTemporaryFile(suffix=".txt", delete=False)
        notes_file.close()
        cmd += ["--notes-out", notes_file.name]
    cmd += list(args) + [str(chart)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError("render failed: %s\n%s" % (" ".join(cmd), proc.stderr))
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d] if proc.returncode == 0 else []
    text = None
    if notes_file:
        text = Path(notes_file.name).read_text()
        os.unlink(notes_file.name)
    return docs, proc.stdout, proc.stderr, proc.returncode, text


def render(**kw):
    return run_render(**kw)[0]


def write_values(tmp_path, values, name="values.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(values))
    return p


def find(docs, kind, name_suffix=""):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert found, "no %s *%s in %s" % (kind, name_suffix, [(d["kind"], d["metadata"]["name"]) for d in docs])
    return found


def one(docs, kind, name_suffix=""):
    found = find(docs, kind, name_suffix)
    assert len(found) == 1, found
    return found[0]


def workloads(docs):
    return [d for d in docs if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet")]


def with_pods(rendered):
    """The rendered cases that have a pod with strata (examples/library.yaml has none)."""
    return {name: docs for name, docs in rendered.items() if name != "library"}


def strata_pod(docs):
    """The pod template that carries strata (demo or the parent's app)."""
    for d in workloads(docs):
        spec = d["spec"]["template"]["spec"]
        if any(c["name"] == "strata" for c in spec.get("containers", []) + spec.get("initContainers", [])):
            return d["spec"]["template"]
    raise AssertionError("no pod with a strata container")


def strata_container(pod):
    spec = pod["spec"]
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        if c["name"] == "strata":
            return c
    raise AssertionError("no strata container")


def strata_config(docs):
    cm = one(docs, "ConfigMap", "-config")
    return yaml.safe_load(cm["data"]["strata.yaml"]), cm["data"]["strata.yaml"]


def volume(pod, name):
    for v in pod["spec"].get("volumes", []):
        if v["name"] == name:
            return v
    return None


# All renders of the examples, done once: name -> (values file or None, chart).
CASES = {"default": (None, CHART)}
CASES.update({p.stem: (p, CHART) for p in EXAMPLES})
CASES["inference-app"] = (None, PARENT)
CASES["inference-app-classic"] = ("sidecar-classic", PARENT)


@pytest.fixture(scope="session")
def rendered():
    """Renders every example into tests/helm/out/<case>.yaml (kept for reading)."""
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    result = {}
    for name, (values, chart) in CASES.items():
        sets = ["strata.sidecar.native=false"] if values == "sidecar-classic" else []
        vals = [values] if isinstance(values, Path) else []
        docs, text, _, _, notes = run_render(chart=chart, values=vals, sets=sets, notes=True)
        (OUT / ("%s.yaml" % name)).write_text(text)
        result[name] = docs
        assert notes is not None
    return result


# --- schemas, lint ---------------------------------------------------------

def test_every_example_renders(rendered):
    assert set(rendered) == set(CASES)
    for name, docs in rendered.items():
        assert any(d["kind"] == "ConfigMap" for d in docs), name


def test_manifests_match_kubernetes_schemas(rendered):
    files = sorted(str(p) for p in OUT.glob("*.yaml"))
    assert len(files) == len(CASES)
    proc = subprocess.run(["node", str(HERE / "validate-k8s.cjs")] + files, capture_output=True, text=True)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_validator_catches_mistakes(rendered, tmp_path):
    """The validator itself: a typo, a wrong type, a bad CRD field must fail."""
    text = (OUT / "demo.yaml").read_text()
    broken = (text.replace("readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", 1)
              .replace("failureThreshold: 150", 'failureThreshold: "150"', 1)
              .replace("scrapeTimeout: 10s", "scrapeTimout: 10s", 1))
    assert broken != text
    bad = tmp_path / "broken.yaml"
    bad.write_text(broken)
    proc = subprocess.run(["node", str(HERE / "validate-k8s.cjs"), str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "unknown field /spec/template/spec/initContainers/0/securityContext/readOnlyRootFileSystem" in proc.stdout
    assert "startupProbe/failureThreshold" in proc.stdout
    assert "unknown field /spec/podMetricsEndpoints/0/scrapeTimout" in proc.stdout


def test_yamllint_rendered(rendered):
    files = sorted(str(p) for p in OUT.glob("*.yaml"))
    proc = subprocess.run(["yamllint", "-s", "-c", str(HERE / "yamllint-rendered.yaml")] + files,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_yamllint_chart_sources():
    files = [CHART / "Chart.yaml", CHART / "values.yaml", PARENT / "Chart.yaml", PARENT / "values.yaml"]
    files += EXAMPLES + BAD + [HERE / "yamllint-rendered.yaml"]
    proc = subprocess.run(["yamllint", "-s"] + [str(f) for f in files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_values_schema_is_draft07_and_strict():
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, where
            for k, v in node.items():
                walk(v, where + "/" + k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, "%s/%d" % (where, i))
    walk(schema, "")
    # every key of values.yaml is described by the schema
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in leaf_paths(values):
        node = schema
        for part in path.split("."):
            assert part in node.get("properties", {}), "values.yaml key %s is not in the schema" % path
            node = node["properties"][part]


@pytest.mark.parametrize("bad", BAD, ids=[p.stem for p in BAD])
def test_bad_values_are_rejected(bad):
    first = bad.read_text().splitlines()[0]
    assert first.startswith("# expect: "), "%s must start with '# expect: <message>'" % bad
    expected = first[len("# expect: "):]
    _, _, err, rc, _ = run_render(values=[bad], check=False)
    assert rc != 0, "%s was accepted" % bad.name
    assert expected in err, "%s: expected %r in:\n%s" % (bad.name, expected, err)


def test_bad_subchart_values_are_rejected_from_the_parent(tmp_path):
    v = write_values(tmp_path, {"strata": {"cacheVolume": {"kind": "tmpfs"}}})
    _, _, err, rc, _ = run_render(chart=PARENT, values=[v], check=False)
    assert rc != 0
    assert "strata:\n- cacheVolume.kind" in err, err


def test_kubernetes_version_is_checked():
    _, _, err, rc, _ = run_render("--kube-version", "v1.28.9", check=False)
    assert rc != 0 and "chart requires kubeVersion: >=1.29.0-0" in err, err
    run_render("--kube-version", "v1.29.0-gke.1")  # pre-release builds of 1.29 pass
    run_render("--kube-version", "v1.31.2")


# --- invariants ------------------------------------------------------------

def pod_checksum(docs):
    return strata_pod(docs)["metadata"]["annotations"]["checksum/strata-config"]


@pytest.mark.parametrize("chart", [CHART, PARENT], ids=["demo", "inference-app"])
def test_checksum_annotation_tracks_the_config(chart, tmp_path):
    prefix = "strata." if chart == PARENT else ""
    base = render(chart=chart)
    again = render(chart=chart)
    changed = render(chart=chart, sets=[prefix + "config.tiers.ram.size=300MiB"])
    volume_kind = render(chart=chart, sets=[prefix + "cacheVolume.kind=none"])
    unrelated = render(chart=chart, sets=[prefix + "probes.liveness.periodSeconds=20"])
    assert pod_checksum(base) == pod_checksum(again)
    assert pod_checksum(base) != pod_checksum(changed)
    assert pod_checksum(base) != pod_checksum(volume_kind)
    assert pod_checksum(base) == pod_checksum(unrelated)
    # the annotation is the sha256 of exactly the ConfigMap's strata.yaml
    for docs in (base, changed, volume_kind):
        _, text = strata_config(docs)
        assert text.endswith("\n")
        assert pod_checksum(docs) == hashlib.sha256(text[:-1].encode()).hexdigest()


@pytest.mark.parametrize("chart", [CHART, PARENT], ids=["demo", "inference-app"])
def test_native_sidecar_mode(chart):
    prefix = "strata." if chart == PARENT else ""
    native = strata_pod(render(chart=chart))["spec"]
    assert [c["name"] for c in native.get("initContainers", [])] == ["strata"]
    assert native["initContainers"][0]["restartPolicy"] == "Always"
    assert "strata" not in [c["name"] for c in native["containers"]]

    classic = strata_pod(render(chart=chart, sets=[prefix + "sidecar.native=false"]))["spec"]
    assert "initContainers" not in classic
    names = [c["name"] for c in classic["containers"]]
    assert "strata" in names and len(names) == 2
    assert "restartPolicy" not in strata_container({"spec": classic})


def test_native_sidecar_needs_kubernetes_129_from_a_parent_without_kubeversion(tmp_path):
    """The include path checks .Capabilities itself (a parent chart may not declare kubeVersion)."""
    parent = tmp_path / "app"
    shutil.copytree(PARENT, parent)
    chart_yaml = (parent / "Chart.yaml").read_text()
    chart_yaml = re.sub(r'(?m)^kubeVersion:.*\n', "", chart_yaml)
    chart_yaml = chart_yaml.replace("file://../..", "file://" + str(CHART))
    (parent / "Chart.yaml").write_text(chart_yaml)
    _, _, err, rc, _ = run_render("--kube-version", "1.28.4", chart=parent, check=False)
    assert rc != 0 and "sidecar.native needs Kubernetes 1.29 or later" in err, err
    run_render("--kube-version", "1.28.4", chart=parent, sets=["strata.sidecar.native=false"])


RESTRICTED_EXEMPT = {("hostpath", "hostPath volume"), ("local-nvme", "seccomp installer")}


def pss_restricted_violations(pod):
    """The Pod Security Standard 'restricted' rules (v1.29) a pod template breaks."""
    out = []
    spec = pod["spec"]
    psc = spec.get("securityContext", {})
    for v in spec.get("volumes", []):
        allowed = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                   "projected", "secret"}
        kinds = set(v) - {"name"}
        if not kinds <= allowed:
            out.append("volume %s: %s" % (v["name"], kinds - allowed))
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            out.append(key)
    pod_seccomp = psc.get("seccompProfile", {}).get("type")
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        sc = c.get("securityContext", {})
        n = c["name"]
        if sc.get("privileged"):
            out.append(n + ": privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(n + ": allowPrivilegeEscalation")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            out.append(n + ": capabilities.drop")
        if set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            out.append(n + ": capabilities.add")
        if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            out.append(n + ": runAsNonRoot")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(n + ": runAsUser 0")
        seccomp = sc.get("seccompProfile", {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(n + ": seccompProfile %s" % seccomp)
        for port in c.get("ports", []):
            if port.get("hostPort"):
                out.append(n + ": hostPort")
    return out


def test_unix_socket_is_shared_with_the_app(rendered):
    # strata listens on it (the config), both containers mount its emptyDir,
    # and the app is told where it is; TCP stays.
    for case, app_name in (("default", "app"), ("inference-app", "inference"),
                           ("inference-app-classic", "inference")):
        docs = rendered[case]
        pod = strata_pod(docs)
        cfg, _ = strata_config(docs)
        assert cfg["server"]["unix_socket"] == "/run/strata/strata.sock", case
        assert cfg["server"]["unix_socket_mode"] == "0660", case
        assert cfg["server"]["port"] == 11211, case
        v = volume(pod, "strata-socket")
        assert v["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Mi"}, case
        want = {"name": "strata-socket", "mountPath": "/run/strata"}
        assert want in strata_container(pod)["volumeMounts"], case
        app = [c for c in pod["spec"]["containers"] if c["name"] == app_name][0]
        assert want in app["volumeMounts"], case
        assert {"name": "STRATA_SOCKET", "value": "/run/strata/strata.sock"} in app["env"], case
        assert {"name": "STRATA_ADDR", "value": "127.0.0.1:11211"} in app["env"], case
    # off: no socket, no volume, no mount, no variable
    docs = render(sets=["unixSocket.enabled=false", "demo.enabled=true"])
    pod = strata_pod(docs)
    cfg, _ = strata_config(docs)
    assert "unix_socket" not in cfg["server"]
    assert all(v["name"] != "strata-socket" for v in pod["spec"]["volumes"])
    for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
        assert all(m["name"] != "strata-socket" for m in c.get("volumeMounts", []))
        assert all(e["name"] != "STRATA_SOCKET" for e in c.get("env", []))
    # the chart owns it: config cannot set it
    _, _, err, rc, _ = run_render(sets=["config.server.unix_socket=/tmp/x.sock"], check=False)
    assert rc != 0 and "unix_socket" in err, err


def test_security_context_is_restricted(rendered):
    for name, docs in with_pods(rendered).items():
        c = strata_container(strata_pod(docs))
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True, name
        assert sc["runAsUser"] == 10001 and sc["runAsGroup"] == 10001, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["capabilities"] == {"drop": ["ALL"]}, name
        assert sc["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost"), name
        pod = strata_pod(docs)
        assert pod["spec"]["securityContext"]["fsGroup"] == 10001, name
        # /tmp, the socket's directory and the cache volume are the only writable places
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/etc/strata"]["readOnly"] is True
        assert set(mounts) <= {"/etc/strata", "/tmp", "/run/strata", "/var/cache/strata"}
        # the whole pod meets the restricted Pod Security Standard, except
        # where an example documents why not
        violations = pss_restricted_violations(pod)
        if name == "hostpath":
            assert violations == ["volume strata-cache: {'hostPath'}"], violations
        else:
            assert violations == [], (name, violations)
        for d in workloads(docs):
            if d["spec"]["template"] is not pod:
                assert (name == "local-nvme" and d["kind"] == "DaemonSet") or \
                    (name == "upstream-pool" and d["kind"] == "StatefulSet"), (name, d["metadata"]["name"])
                # the chart's other pods meet the restricted standard too
                if d["kind"] == "StatefulSet":
                    assert pss_restricted_violations(d["spec"]["template"]) == [], name


def test_seccomp_choices():
    for profile in ("RuntimeDefault", "Unconfined"):
        sc = strata_container(strata_pod(render(sets=["seccomp.profile=" + profile])))["securityContext"]
        assert sc["seccompProfile"] == {"type": profile}
    sc = strata_container(strata_pod(render(sets=["seccomp.profile=Localhost"])))["securityContext"]
    assert sc["seccompProfile"] == {"type": "Localhost", "localhostProfile": "profiles/strata.json"}


def test_probes_point_at_the_health_endpoints(rendered):
    assert not workloads(rendered["library"])
    for name, docs in with_pods(rendered).items():
        c = strata_container(strata_pod(docs))
        expected = {"startupProbe": "/readyz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
        for probe, path in expected.items():
            get = c[probe]["httpGet"]
            assert (get["path"], get["port"], get.get("scheme", "HTTP")) == (path, METRICS_PORT, "HTTP"), (name, probe)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"strata-metrics": METRICS_PORT, "strata-memcache": MEMCACHED_PORT}
        cfg, _ = strata_config(docs)
        # strata must serve the probes on the pod IP, and listen where the port says
        assert cfg["metrics"] == {"enabled": True, "listen": "0.0.0.0:%d" % METRICS_PORT}, name
        assert cfg["server"]["port"] == MEMCACHED_PORT
        assert c["args"][:2] == ["--config", "/etc/strata/strata.yaml"]


def test_probes_follow_the_ports_value():
    docs = render(sets=["ports.metrics=9200", "ports.memcached=11311", "probes.readiness.enabled=false"])
    c = strata_container(strata_pod(docs))
    assert c["startupProbe"]["httpGet"]["port"] == 9200
    assert "readinessProbe" not in c
    cfg, _ = strata_config(docs)
    assert cfg["metrics"]["listen"] == "0.0.0.0:9200" and cfg["server"]["port"] == 11311
    app = [x for x in strata_pod(docs)["spec"]["containers"] if x["name"] == "app"][0]
    assert {"name": "STRATA_ADDR", "value": "127.0.0.1:11311"} in app["env"]


def test_cache_volume_kinds(tmp_path):
    # emptyDir: sizeLimit defaults to the tier + 64Mi
    docs = render()
    pod = strata_pod(docs)
    assert volume(pod, "strata-cache") == {"name": "strata-cache", "emptyDir": {"sizeLimit": "1088Mi"}}
    cfg, _ = strata_config(docs)
    assert cfg["tiers"]["ssd"]["path"] == "/var/cache/strata/cache.bin"
    assert {"name": "strata-cache", "mountPath": "/var/cache/strata"} in strata_container(pod)["volumeMounts"]

    # ephemeral: a PVC template with the storage class and size
    docs = render(sets=["cacheVolume.kind=ephemeral", "cacheVolume.ephemeral.storageClassName=local-nvme",
                        "cacheVolume.size=2Gi"])
    v = volume(strata_pod(docs), "strata-cache")
    spec = v["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert spec["storageClassName"] == "local-nvme"
    assert spec["resources"]["requests"]["storage"] == "2Gi"
    assert spec["accessModes"] == ["ReadWriteOnce"]

    # hostPath: path, type, subPathExpr on the mount
    docs = render(sets=["cacheVolume.kind=hostPath", "cacheVolume.hostPath.path=/mnt/nvme/strata",
                        "cacheVolume.hostPath.subPathExpr=$(POD_NAME)"])
    pod = strata_pod(docs)
    assert volume(pod, "strata-cache") == {"name": "strata-cache",
                                           "hostPath": {"path": "/mnt/nvme/strata", "type": "Directory"}}
    mount = [m for m in strata_container(pod)["volumeMounts"] if m["name"] == "strata-cache"][0]
    assert mount["subPathExpr"] == "$(POD_NAME)"
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in \
        strata_container(pod)["env"]

    # none: no volume, no mount, and no tiers.ssd in strata's config
    docs = render(sets=["cacheVolume.kind=none"])
    pod = strata_pod(docs)
    assert volume(pod, "strata-cache") is None
    assert all(m["name"] != "strata-cache" for m in strata_container(pod)["volumeMounts"])
    cfg, _ = strata_config(docs)
    assert "ssd" not in cfg["tiers"] and cfg["tiers"]["ram"]["size"] == "256MiB"


def leaf_paths(tree, prefix=""):
    if isinstance(tree, dict) and tree:
        for k, v in tree.items():
            yield from leaf_paths(v, prefix + k + ".")
    else:
        yield prefix[:-1]


def strata_yaml_keys():
    """Every key path config/strata.yaml knows, its commented-out keys included."""
    text = (REPO / "config" / "strata.yaml").read_text()
    uncommented = re.sub(r"(?m)^(\s*)# (\w+:)", r"\1\2", text)
    return set(leaf_paths(yaml.safe_load(uncommented)))


def test_rendered_config_keys_are_strata_keys(rendered):
    known = strata_yaml_keys()
    assert "tiers.ssd.demote_on_shutdown" in known and "server.unix_socket" in known
    defaults = yaml.safe_load((REPO / "config" / "strata.yaml").read_text())
    configs = [strata_config(docs)[0] for docs in rendered.values()]
    configs.append(strata_config(render(sets=["cacheVolume.kind=none"]))[0])
    for cfg in configs:
        for path in leaf_paths(cfg):
            assert path in known, "rendered key %s is not in config/strata.yaml" % path
            # a scalar where strata has a scalar, of a YAML type it reads
            value = cfg
            default = defaults
            for part in path.split("."):
                value = value[part]
                default = default.get(part) if isinstance(default, dict) else None
            if isinstance(default, list):
                # a list where strata has one (upstream.servers): of strings
                assert isinstance(value, list) and all(isinstance(v, str) for v in value), path
                continue
            assert not isinstance(value, (dict, list)), path
            if isinstance(default, bool):
                assert isinstance(value, bool), path


def test_memory_limit_is_computed_or_checked(tmp_path):
    def limits(docs):
        return strata_container(strata_pod(docs))["resources"]
    # The README's formula (tests/integration/memory_formula.py, which
    # test_memory.py holds real RSS to): 24MiB + 256MiB x 1.2 + 32MiB (auto
    # connection memory) + 2 x 2 workers x 1MiB + 4096 x 2KiB + 3 x 16MiB
    # regions + 1GiB / 4KiB x 14 B = 426.7MiB
    r = limits(render())
    assert r["limits"]["memory"] == "429Mi" and r["requests"]["memory"] == "429Mi"
    assert r["limits"]["memory"] == memory_formula.as_mi(
        memory_formula.memory_limit(ram=256 << 20, ssd=1 << 30))
    # RAM only: no region buffers or index; the connection memory is 1GiB / 8
    r = limits(render(sets=["cacheVolume.kind=none", "config.tiers.ram.size=1GiB"]))
    assert r["limits"]["memory"] == "1393Mi"
    assert r["limits"]["memory"] == memory_formula.as_mi(memory_formula.memory_limit(ram=1 << 30))
    # every term follows its setting
    for sets, kw in [
        (["config.server.max_connection_memory=100MiB"],
         dict(connection_memory=100 << 20)),
        (["config.server.workers=8", "config.tiers.ram.max_item_size=4MiB"],
         dict(workers=8, max_item=4 << 20)),
        (["config.server.max_connections=100"], dict(max_connections=100)),
        (["config.tiers.ssd.region_size=64MiB", "config.tiers.ssd.size=4GiB"],
         dict(region=64 << 20, ssd=4 << 30)),
        (["sizing.ssdAvgItemSize=512"], dict(avg_item=512)),
        (["config.server.workers=0", "resources.limits.cpu=2500m"], dict(workers=3)),
        (["config.server.workers=0", "resources.limits.cpu=4"], dict(workers=4)),
    ]:
        want = dict(ram=256 << 20, ssd=1 << 30)
        want.update(kw)
        r = limits(render(sets=sets))
        assert r["limits"]["memory"] == memory_formula.as_mi(memory_formula.memory_limit(**want)), sets
    # workers 0 without a CPU limit: the formula cannot count them
    _, _, err, rc, _ = run_render(sets=["config.server.workers=0"], check=False)
    assert rc != 0 and "resources.limits.cpu is unset" in err, err
    # ...unless the limit is given and not checked
    r = limits(render(sets=["config.server.workers=0", "resources.limits.memory=2Gi",
                            "sizing.checkMemoryLimit=false"]))
    assert r["limits"]["memory"] == "2Gi"
    # an explicit, large enough limit is kept; requests.memory follows it
    r = limits(render(sets=["resources.limits.memory=2Gi"]))
    assert r["limits"]["memory"] == "2Gi" and r["requests"]["memory"] == "2Gi"
    # too small: fails, unless the check is off
    _, _, err, rc, _ = run_render(sets=["resources.limits.memory=400Mi"], check=False)
    assert rc != 0 and "is below what strata needs" in err and "429Mi" in err
    r = limits(render(sets=["resources.limits.memory=400Mi", "sizing.checkMemoryLimit=false"]))
    assert r["limits"]["memory"] == "400Mi"
    # the local-NVMe example: 8GiB RAM, 200GiB SSD, 4 workers, 512MiB connection memory
    r = limits(render(values=[CHART / "examples" / "local-nvme.yaml"]))
    assert r["limits"]["memory"] == "11133Mi" == memory_formula.as_mi(memory_formula.memory_limit(
        ram=8 << 30, ssd=200 << 30, workers=4, connection_memory=512 << 20))
    # memory limit over the trim threshold strata uses (ram x 1.125 + 8MiB)
    for docs in (render(), render(values=[CHART / "examples" / "local-nvme.yaml"])):
        cfg, _ = strata_config(docs)
        ram = parse_size(cfg["tiers"]["ram"]["size"])
        limit = parse_quantity(limits(docs)["limits"]["memory"])
        assert limit > ram * 1.125 + 8 * 2**20


def parse_size(text):
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", str(text))
    units = {"": 1, "B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
    return int(m.group(1)) * units[m.group(2)]


def parse_quantity(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(text))
    units = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6,
             "G": 10**9, "T": 10**12}
    return float(m.group(1)) * units[m.group(2)]


def test_volume_size_covers_the_tier(rendered):
    for name, docs in with_pods(rendered).items():
        pod = strata_pod(docs)
        cfg, _ = strata_config(docs)
        v = volume(pod, "strata-cache")
        if "ssd" not in cfg["tiers"]:
            assert v is None
            continue
        ssd = parse_size(cfg["tiers"]["ssd"]["size"])
        if "emptyDir" in v:
            assert parse_quantity(v["emptyDir"]["sizeLimit"]) >= ssd, name
        elif "ephemeral" in v:
            storage = v["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"]
            assert parse_quantity(storage) >= ssd, name


def test_termination_grace_period():
    def grace(docs):
        return strata_pod(docs)["spec"]["terminationGracePeriodSeconds"]
    assert grace(render()) == 60  # max(60, 10 + 5 x 1 + 30)
    # 8GiB RAM tier, 15s drain: 15 + 5 x 8 + 30
    assert grace(render(values=[CHART / "examples" / "local-nvme.yaml"])) == 85
    # no SSD tier, nothing to write: the floor
    assert grace(render(sets=["cacheVolume.kind=none", "config.tiers.ram.size=64GiB"])) == 60
    assert grace(render(sets=["terminationGracePeriodSeconds=120"])) == 120
    # too short: allowed, with a warning in NOTES
    docs, _, _, _, notes = run_render(sets=["terminationGracePeriodSeconds=20"], notes=True)
    assert grace(docs) == 20
    assert "WARNING: terminationGracePeriodSeconds is 20, below the 45 s" in notes
    _, _, _, _, notes = run_render(notes=True)
    assert "WARNING" not in notes


def test_monitoring_objects_select_the_strata_pods(rendered):
    docs = rendered["demo"]
    pod = strata_pod(docs)
    pm = one(docs, "PodMonitor")
    for k, v in pm["spec"]["selector"]["matchLabels"].items():
        assert pod["metadata"]["labels"][k] == v
    endpoint = pm["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "strata-metrics" and endpoint["path"] == "/metrics"
    assert {"action": "replace", "targetLabel": "job", "replacement": "strata"} in endpoint["relabelings"]
    assert pm["metadata"]["labels"]["release"] == "prometheus"

    # the PrometheusRule carries the alert rules file as is
    rule = one(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "alerts" / "strata-rules.yaml").read_text())
    renamed = one(render(values=[CHART / "examples" / "demo.yaml"], sets=["monitoring.jobName=cache"]),
                  "PrometheusRule")
    exprs = [r["expr"] for g in renamed["spec"]["groups"] for r in g["rules"]]
    assert any('job="cache"' in e for e in exprs) and not any('job="strata"' in e for e in exprs)

    # ServiceMonitor -> Service -> pods
    docs = rendered["ram-only"]
    pod = strata_pod(docs)
    svc = one(docs, "Service")
    sm = one(docs, "ServiceMonitor")
    for k, v in sm["spec"]["selector"]["matchLabels"].items():
        assert svc["metadata"]["labels"][k] == v
    for k, v in svc["spec"]["selector"].items():
        assert pod["metadata"]["labels"][k] == v
    assert svc["spec"]["ports"][0]["targetPort"] == "strata-metrics"
    assert sm["spec"]["endpoints"][0]["port"] == "strata-metrics"


def test_dashboard_configmap(rendered):
    cm = one(rendered["default"], "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"]["strata.json"] == (CHART / "dashboards" / "strata.json").read_text()
    json.loads(cm["data"]["strata.json"])
    assert not find_maybe(rendered["ram-only"], "ConfigMap", "-dashboard")


def find_maybe(docs, kind, suffix):
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]


def test_parent_chart_uses_the_named_templates(rendered):
    for case in ("inference-app", "inference-app-classic"):
        docs = rendered[case]
        pod = strata_pod(docs)
        app = [c for c in pod["spec"]["containers"] if c["name"] == "inference"][0]
        assert {"name": "STRATA_ADDR", "value": "127.0.0.1:11211"} in app["env"]
        # the ConfigMap the pod mounts is rendered by the subchart, under that name
        cm = one(docs, "ConfigMap", "-config")
        assert volume(pod, "strata-config")["configMap"]["name"] == cm["metadata"]["name"]
        assert pod["metadata"]["annotations"]["checksum/strata-config"] == \
            hashlib.sha256(cm["data"]["strata.yaml"][:-1].encode()).hexdigest()
        # the parent's values for strata reached the subchart's templates
        cfg, _ = strata_config(docs)
        assert cfg["tiers"]["ram"]["size"] == "1GiB" and cfg["tiers"]["ssd"]["size"] == "20GiB"
        v = volume(pod, "strata-cache")
        assert v["ephemeral"]["volumeClaimTemplate"]["spec"]["storageClassName"] == "local-nvme"
        assert not find_maybe(docs, "Deployment", "-strata-demo")
        pm = one(docs, "PodMonitor")
        for k, val in pm["spec"]["selector"]["matchLabels"].items():
            assert pod["metadata"]["labels"][k] == val
        # the sidecar keeps its computed sizing when included
        assert strata_container(pod)["resources"]["limits"]["memory"] == "1513Mi"
        assert memory_formula.as_mi(memory_formula.memory_limit(ram=1 << 30, ssd=20 << 30)) == \
            "1513Mi"
        assert pod["spec"]["terminationGracePeriodSeconds"] == 60


def test_image_tag_matches_app_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["tag"] == chart["appVersion"]
    c = strata_container(strata_pod(render(sets=["image.digest=sha256:" + "a" * 64])))
    assert c["image"] == "strata@sha256:" + "a" * 64


def schema_has(path):
    node = json.loads((CHART / "values.schema.json").read_text())
    for part in path.split("."):
        node = node.get("properties", {}).get(part)
        if node is None:
            return False
    return True


def test_readme_documents_every_value():
    readme = (CHART / "README.md").read_text()
    section = readme.split("\n## Parameters\n", 1)[1].split("\n## ", 1)[0]
    table = {m.group(1) for m in re.finditer(r"(?m)^\| `([^`]+)` \|", section)}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [p for p in leaf_paths(values) if p not in table and not any(p.startswith(t + ".") for t in table)]
    assert not missing, "README.md's parameters table lacks: %s" % missing
    unknown = [t for t in table if not schema_has(t)]
    assert not unknown, "README.md documents values the schema does not have: %s" % unknown
    for example in EXAMPLES:
        assert "examples/%s" % example.name in readme, example.name


def test_upstream_pool_example(rendered, tmp_path):
    """examples/upstream-pool.yaml: a memcached StatefulSet behind a headless
    Service whose port is named memcache (so Kubernetes DNS serves
    _memcache._tcp SRV records for it), and strata's config pointing at it
    with dnssrv+ (dns+ with discovery: dns; an explicit list wins); off by
    default."""
    for name, docs in rendered.items():
        if name != "upstream-pool":
            assert not find_maybe(docs, "StatefulSet", "-memcached"), name
    docs = rendered["upstream-pool"]
    svc = one(docs, "Service", "-memcached")
    sts = one(docs, "StatefulSet", "-memcached")
    assert svc["metadata"]["name"] == "release-name-strata-memcached"
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["ports"] == [{"name": "memcache", "port": 11211, "targetPort": "memcache",
                                     "protocol": "TCP"}]
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    assert sts["spec"]["replicas"] == 3
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    assert sts["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "memcached:1.6.18"
    assert c["ports"][0]["name"] == "memcache" and c["ports"][0]["containerPort"] == 11211
    assert c["args"] == ["-p", "11211", "-m", "256", "-U", "0"]
    # strata's pods (the demo's) are not selected by the pool's Service
    demo = strata_pod(docs)
    assert not all(demo["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items())
    cfg, _ = strata_config(docs)
    ns = sts["metadata"]["namespace"]
    assert cfg["upstream"]["servers"] == [
        "dnssrv+_memcache._tcp.release-name-strata-memcached.%s.svc.cluster.local" % ns]
    assert cfg["upstream"]["dns_refresh"] == "15s" and cfg["upstream"]["removal_grace"] == "30s"
    example = [CHART / "examples" / "upstream-pool.yaml"]
    cfg, _ = strata_config(render(values=example, sets=["upstreamPool.discovery=dns",
                                                        "upstreamPool.port=22122"]))
    assert cfg["upstream"]["servers"] == [
        "dns+release-name-strata-memcached.%s.svc.cluster.local:22122" % ns]
    cfg, _ = strata_config(render(values=[CHART / "examples" / "upstream-pool.yaml",
                                          write_values(tmp_path, {"config": {"upstream": {
                                              "servers": ["file:/etc/pool"]}}})]))
    assert cfg["upstream"]["servers"] == ["file:/etc/pool"]
    assert "upstream" not in strata_config(render())[0]


def test_upstream_pool_config_starts_strata(tmp_path):
    """The rendered pool config is one the real binary takes (its DNS name
    does not resolve here: strata starts with no member and says so)."""
    if not STRATA_BIN.exists():
        pytest.skip("no built strata")
    _, text = strata_config(render(values=[CHART / "examples" / "upstream-pool.yaml"]))
    cfg = yaml.safe_load(text)
    cfg["server"]["port"] = 0
    cfg["metrics"]["listen"] = "127.0.0.1:0"
    cfg["upstream"]["dns_resolver"] = "127.0.0.1:9"  # nothing answers there
    cfg["tiers"].pop("ssd", None)
    cfg["server"].pop("unix_socket", None)
    cfg["server"].pop("unix_socket_mode", None)
    path = write_values(tmp_path, cfg, "strata.yaml")
    proc = subprocess.Popen([str(STRATA_BIN), "--config", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        out = ""
        while time.monotonic() < deadline and "listening on" not in out:
            line = proc.stdout.readline()
            if not line:
                break
            out += line
        assert "listening on" in out, out
        assert "dnssrv+_memcache._tcp.release-name-strata-memcached" in out, out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_notes_render_for_every_example(rendered):
    for name, (values, chart) in CASES.items():
        if chart != CHART:
            continue
        _, _, _, _, notes = run_render(values=[values] if values else [], notes=True)
        assert "strata 0.1.0" in notes and "ConfigMap release-name-strata-config" in notes, name


# --- the seccomp profile ---------------------------------------------------

PROFILE = CHART / "files" / "seccomp-strata.json"
DANGEROUS = ["mount", "umount2", "ptrace", "bpf", "unshare", "setns", "kexec_load", "init_module",
             "finit_module", "delete_module", "reboot", "swapon", "pivot_root", "keyctl", "add_key",
             "request_key", "settimeofday", "clock_settime", "open_by_handle_at", "perf_event_open",
             "userfaultfd", "acct", "quotactl", "syslog", "process_vm_readv", "process_vm_writev",
             "fsopen", "fsmount", "move_mount", "open_tree", "iopl", "ioperm", "kcmp", "lookup_dcookie",
             "name_to_handle_at", "vhangup", "mbind", "set_mempolicy", "move_pages"]


def allowed_syscalls(profile):
    names = set()
    for rule in profile["syscalls"]:
        if rule["action"] == "SCMP_ACT_ALLOW":
            names.update(rule["names"])
    return names


def test_seccomp_profile_allows_io_uring_and_denies_the_dangerous():
    profile = json.loads(PROFILE.read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    allowed = allowed_syscalls(profile)
    assert {"io_uring_setup", "io_uring_enter", "io_uring_register"} <= allowed
    assert not allowed & set(DANGEROUS), allowed & set(DANGEROUS)
    clone = [r for r in profile["syscalls"] if r["names"] == ["clone"]][0]
    assert clone["args"][0]["op"] == "SCMP_CMP_MASKED_EQ" and clone["args"][0]["value"] == 0x7E020000


def test_seccomp_installer_ships_the_profile(rendered):
    docs = rendered["local-nvme"]
    cm = one(docs, "ConfigMap", "-seccomp")
    assert json.loads(cm["data"]["strata.json"]) == json.loads(PROFILE.read_text())
    ds = one(docs, "DaemonSet")
    host = [v for v in ds["spec"]["template"]["spec"]["volumes"] if "hostPath" in v][0]
    assert host["hostPath"]["path"] == "/var/lib/kubelet/seccomp/profiles"
    sc = strata_container(strata_pod(docs))["securityContext"]["seccompProfile"]
    assert sc == {"type": "Localhost", "localhostProfile": "profiles/strata.json"}


# --- with the real binary --------------------------------------------------

needs_strata = pytest.mark.skipif(not STRATA_BIN.exists(), reason="strata is not built (%s)" % STRATA_BIN)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Strata:
    """The real strata, started with a rendered config, the pod-only settings overridden."""

    def __init__(self, config_text, tmp_path, extra=(), preexec_fn=None):
        self.port = free_port()
        self.metrics = free_port()
        self.tmp = tmp_path
        cfg_file = tmp_path / "strata.yaml"
        cfg_file.write_text(config_text)
        cfg = yaml.safe_load(config_text)
        cmd = [str(STRATA_BIN), "--config", str(cfg_file), "-p", str(self.port), "-l", "127.0.0.1",
               "--metrics-listen", "127.0.0.1:%d" % self.metrics]
        if "ssd" in cfg.get("tiers", {}):
            cmd += ["--ssd-path", str(tmp_path / "cache.bin")]
        self.socket = None
        if cfg.get("server", {}).get("unix_socket"):  # the pod's path, moved here
            self.socket = str(tmp_path / "strata.sock")
            cmd += ["-s", self.socket]
        cmd += list(extra)
        self.log = open(tmp_path / "strata.log", "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("strata exited %s:\n%s" % (self.proc.returncode, self.output()))
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % self.metrics, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("strata not ready after %ss:\n%s" % (timeout, self.output()))

    def command(self, line):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(line)
            data = b""
            while not (data.endswith(b"END\r\n") or data.endswith(b"STORED\r\n")):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data

    def stats(self):
        out = self.command(b"stats\r\n").decode()
        return dict(line.split(" ", 2)[1:] for line in out.splitlines() if line.startswith("STAT "))

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        """SIGTERM, as the kubelet sends; returns the exit status (the log stays in .final_output)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.final_output = self.output()
        self.log.close()
        return self.proc.returncode


@needs_strata
@pytest.mark.parametrize("case", ["default", "local-nvme", "ram-only", "inference-app"])
def test_real_strata_accepts_the_rendered_config(rendered, case, tmp_path):
    cfg, text = strata_config(rendered[case])
    if "ssd" in cfg.get("tiers", {}):
        # keep the test's disk use small: the tier size is the only thing changed
        text = text.replace("size: %s" % cfg["tiers"]["ssd"]["size"], "size: 64MiB")
        text = text.replace("write_budget: 200MiB", "write_budget: 0")
    if case == "local-nvme":
        text = text.replace("size: 8GiB", "size: 64MiB")
    s = Strata(text, tmp_path)
    try:
        s.wait_ready()
        assert s.command(b"set k 0 0 5\r\nhello\r\n") == b"STORED\r\n"
        assert s.command(b"get k\r\n") == b"VALUE k 0 5\r\nhello\r\nEND\r\n"
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % s.metrics, timeout=5) as r:
            assert r.status == 200
    finally:
        rc = s.stop()
    assert rc == 0, s.final_output


@needs_strata
def test_demo_app_gets_hits_from_strata(rendered, tmp_path):
    cfg, text = strata_config(rendered["default"])
    text = text.replace("size: 1GiB", "size: 64MiB")
    py_compile.compile(str(CHART / "files" / "demo-app.py"), cfile=str(tmp_path / "demo.pyc"), doraise=True)
    s = Strata(text, tmp_path)
    try:
        s.wait_ready()
        # Over the unix socket, as in the pod (the chart's default).
        assert s.socket is not None
        assert stat.S_IMODE(os.stat(s.socket).st_mode) == 0o660
        env = dict(os.environ, STRATA_SOCKET=s.socket, STRATA_ADDR="127.0.0.1:1", DEMO_ITERATIONS="300",
                   DEMO_INTERVAL="0", DEMO_PROMPTS="50", DEMO_VALUE_SIZE="2000", DEMO_REPORT_EVERY="100")
        proc = subprocess.run([sys.executable, str(CHART / "files" / "demo-app.py")], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        last = proc.stdout.strip().splitlines()[-1]
        m = re.fullmatch(r"done: requests=300 hits=(\d+) misses=(\d+) errors=0", last)
        assert m and int(m.group(1)) > 150, proc.stdout
        assert int(s.stats()["get_hits"]) == int(m.group(1))
    finally:
        s.stop()


def seccomp_preexec(profile):
    """A preexec_fn that loads an OCI seccomp profile with libseccomp, as runc does."""
    import seccomp  # python3-seccomp (Debian)

    def apply():
        f = seccomp.SyscallFilter(seccomp.ERRNO(profile.get("defaultErrnoRet", 1)))
        for rule in profile["syscalls"]:
            if rule["action"] == "SCMP_ACT_ALLOW":
                action = seccomp.ALLOW
            else:
                action = seccomp.ERRNO(rule.get("errnoRet", 1))
            args = []
            for a in rule.get("args", []):
                op = {"SCMP_CMP_EQ": seccomp.EQ, "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ}[a["op"]]
                if op == seccomp.MASKED_EQ:
                    args.append(seccomp.Arg(a["index"], op, a["value"], a.get("valueTwo", 0)))
                else:
                    args.append(seccomp.Arg(a["index"], op, a["value"]))
            for name in rule["names"]:
                try:
                    f.add_rule(action, name, *args)
                except (RuntimeError, ValueError, OSError):
                    pass  # not a system call of this architecture
        f.load()
    return apply


def io_uring_available():
    """Whether this kernel and sandbox let a process set up an io_uring at all."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 4, params)  # io_uring_setup (x86_64 and aarch64)
    if fd >= 0:
        os.close(fd)
        return True
    return False


@needs_strata
@pytest.mark.parametrize("with_io_uring", [True, False], ids=["chart-profile", "runtime-default-like"])
def test_seccomp_profile_runs_strata(rendered, tmp_path, with_io_uring):
    """strata under the chart's profile (io_uring on), and under the same profile less
    io_uring, as containerd's RuntimeDefault denies it (strata falls back to its thread pool)."""
    pytest.importorskip("seccomp")
    if os.uname().machine not in ("x86_64", "aarch64"):
        pytest.skip("io_uring_setup's number is hard-coded for x86_64 and aarch64")
    if not io_uring_available():
        pytest.skip("io_uring is not available on this machine at all")
    profile = json.loads(PROFILE.read_text())
    if not with_io_uring:
        for rule in profile["syscalls"]:
            rule["names"] = [n for n in rule["names"] if not n.startswith("io_uring")]
    _, text = strata_config(rendered["default"])
    text = text.replace("size: 1GiB", "size: 64MiB")
    s = Strata(text, tmp_path, preexec_fn=seccomp_preexec(profile))
    try:
        s.wait_ready()
        value = os.urandom(3000).hex().encode()
        for i in range(200):
            assert s.command(b"set key%d 0 0 %d\r\n%s\r\n" % (i, len(value), value)) == b"STORED\r\n"
        assert s.command(b"get key7\r\n") == b"VALUE key7 0 %d\r\n%s\r\nEND\r\n" % (len(value), value)
        mode = s.stats().get("ssd_io_mode")
        assert mode == ("io_uring" if with_io_uring else "threadpool"), (mode, s.output())
        net = s.stats().get("network_io_mode")
        assert net == ("io_uring" if with_io_uring else "syscalls"), (net, s.output())
    finally:
        rc = s.stop()
    assert rc == 0, s.final_output


# --- the renderer's fidelity to Helm ---------------------------------------

def make_chart(root, name, files, chart_extra=""):
    d = root / name
    (d / "templates").mkdir(parents=True)
    (d / "Chart.yaml").write_text("apiVersion: v2\nname: %s\nversion: 1.0.0\nappVersion: '9'\n%s" % (name, chart_extra))
    for rel, text in files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return d


def test_renderer_follows_helm(tmp_path):
    """The Helm behaviours the chart relies on, on a two-chart fixture."""
    make_chart(tmp_path / "top" / "charts", "sub", {
        "values.yaml": "a: 1\nkeep: sub-default\nnested: {x: 1, y: 2}\nglobal: {g: sub}\n",
        "values.schema.json": json.dumps({"type": "object", "additionalProperties": False, "properties": {
            "a": {"type": "integer"}, "keep": {"type": "string"}, "nested": {"type": "object"},
            "global": {"type": "object"}}}),
        "templates/_names.tpl": '{{- define "sub.name" -}}sub-{{ .Values.a }}{{- end -}}',
        "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include \"sub.name\" . }}\n"
                             "data:\n  nested: {{ toJson .Values.nested | quote }}\n  g: {{ .Values.global.g }}\n"
                             "  chart: {{ .Chart.Name }}\n  tpl: {{ tpl \"{{ .Values.keep }}\" . }}\n"
                             "  file: {{ .Files.Get \"files/f.txt\" | trim }}\n  missing: \"{{ .Values.nope }}\"\n",
        "files/f.txt": "from a file\n",
    })
    top = make_chart(tmp_path, "top", {
        "values.yaml": "sub:\n  a: 2\n  nested: {y: null, z: 3}\nglobal: {g: top}\nother: {enabled: true}\n",
        "templates/svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ include \"sub.name\" (dict \"Values\" .Values.sub) }}\n",
        "templates/NOTES.txt": "{{ required \"need .Values.other\" .Values.other.enabled }}",
    }, chart_extra="dependencies:\n  - name: sub\n    version: '>=1.0.0'\n    repository: file://charts/sub\n    condition: other.enabled\n")
    docs, out, err, rc, _ = run_render(chart=top)
    assert rc == 0, err
    # install order: ConfigMap before Service; sources named like Helm's
    assert [d["kind"] for d in docs] == ["ConfigMap", "Service"]
    assert "# Source: top/charts/sub/templates/cm.yaml" in out and "# Source: top/templates/svc.yaml" in out
    cm = docs[0]
    assert cm["metadata"]["name"] == "sub-2"              # parent values override the subchart's
    assert json.loads(cm["data"]["nested"]) == {"x": 1, "z": 3}   # null deletes a default, maps merge
    assert cm["data"]["g"] == "top"                       # globals flow down, parent wins
    assert cm["data"]["chart"] == "sub" and cm["data"]["tpl"] == "sub-default"
    assert cm["data"]["file"] == "from a file" and cm["data"]["missing"] == ""
    assert docs[1]["metadata"]["name"] == "sub-2"         # a parent includes the subchart's template

    # -f files in order, then --set
    f1 = write_values(tmp_path, {"sub": {"a": 5}}, "1.yaml")
    f2 = write_values(tmp_path, {"sub": {"a": 6}}, "2.yaml")
    docs = render(chart=top, values=[f1, f2], sets=["sub.keep=set"])
    assert docs[0]["metadata"]["name"] == "sub-6" and docs[0]["data"]["tpl"] == "set"
    # the subchart's schema sees the subchart's scope, global included
    _, _, err, rc, _ = run_render(chart=top, sets=["sub.a=x"], check=False)
    assert rc != 0 and "sub:\n- a: Invalid type. Expected: integer, given: string" in err, err
    # a false condition drops the subchart, templates included
    _, _, err, rc, _ = run_render(chart=top, sets=["other.enabled=false"], check=False)
    assert rc != 0 and 'no template "sub.name"' in err, err
    # required and fail messages come out as Helm prints them
    _, _, err, rc, _ = run_render(chart=top, sets=["other.enabled=null"], check=False)
    assert rc != 0 and "need .Values.other" in err, err
