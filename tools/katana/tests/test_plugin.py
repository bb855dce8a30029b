"""The Katana farm plug-in, loaded the way Katana loads plug-ins, driven against a real local
queue (`farm queue serve` with real agent processes) through the `farm` command line.

Run with:  FARM_BIN=target/debug/farm python3 -m pytest tools/katana/tests
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
RESOURCES = os.path.dirname(HERE)  # the folder added to KATANA_RESOURCES
REPO = os.path.abspath(os.path.join(RESOURCES, "..", ".."))
sys.path.insert(0, os.path.join(RESOURCES, "host"))

from Katana import FarmAPI  # noqa: E402  (the stand-in)


def farm_bin():
    path = os.environ.get("FARM_BIN") or os.path.join(REPO, "target", "debug", "farm")
    if not os.path.exists(path):
        pytest.fail("the farm binary is missing: build it (cargo build -p farm) or set FARM_BIN")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, probe, timeout=60.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    pytest.fail("timed out waiting for %s (last: %r)" % (what, last))


@pytest.fixture(scope="module")
def queue(tmp_path_factory):
    """A local queue server with two real agents, and a farms file naming it `studio`."""
    root = tmp_path_factory.mktemp("queue")
    (root / "staging").mkdir()  # the shared staging root exists before the farm uses it
    port = free_port()
    config = root / "farms.yaml"
    config.write_text(
        "farms:\n"
        "  studio:\n"
        "    adapter: local\n"
        "    description: the test queue\n"
        "    staging_root: %s\n"
        "    installation: {katana_root: /opt/Katana7.0v1}\n"
        "    render_environment: {FOUNDRY_LICENSE: '4101@license'}\n"
        "    settings: {url: 'http://127.0.0.1:%d', data_root: '%s', autostart: false}\n"
        % (root / "staging", port, root / "data")
    )
    env = dict(os.environ, FARM_BIN=farm_bin(), FARM_CONFIG=str(config), FARM_KATANA_FARMS="studio")
    server = subprocess.Popen(
        [farm_bin(), "queue", "serve", "--data-root", str(root / "data"), "--port", str(port), "--agents", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(str(root / "server.log"), "w"),
    )
    try:
        wait_until("the queue to answer", lambda: subprocess.run(
            [farm_bin(), "--farm", "studio", "list"], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL).returncode == 0, timeout=30)
        old = dict(os.environ)
        os.environ.update(env)
        yield root
        os.environ.clear()
        os.environ.update(old)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def load_plugins(resources):
    """What Katana does: import every module in <resource>/Plugins and read PluginRegistry."""
    plugins = []
    folder = os.path.join(resources, "Plugins")
    for filename in sorted(os.listdir(folder)):
        if not filename.endswith(".py"):
            continue
        spec = importlib.util.spec_from_file_location("katana_plugin_" + filename[:-3], os.path.join(folder, filename))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        plugins.extend(getattr(module, "PluginRegistry", []))
    return plugins


@pytest.fixture(scope="module")
def plugin(queue):
    registry = load_plugins(RESOURCES)
    entries = [e for e in registry if e[0] == "FarmPlugin"]
    assert [e[2] for e in entries] == ["Farm: studio"], registry
    kind, version, name, cls = entries[0]
    assert version == 2.0
    instance = cls()
    assert isinstance(instance, FarmAPI.BaseFarmPlugin)
    return instance


def job_request(tmp_path, commands, frame_range=None, name=None):
    return FarmAPI.FarmPluginManager.JobRequest(
        renderContextName=str(uuid.uuid4()), commands=commands, renderType="diskRender",
        frameRange=frame_range, environment={"SHOT": "sh010 'hero'"}, jobName=name or "katana test")


def test_staging_installation_and_environment(plugin, queue, tmp_path):
    context = str(uuid.uuid4())
    temp = plugin.createTempDirectory(context)
    assert os.path.isdir(temp) and context in temp
    optree = tmp_path / "scene.optree"
    optree.write_bytes(b"\x00optree\xff")
    copies = plugin.copyRenderFiles([str(optree)], context)
    assert open(copies[str(optree)], "rb").read() == b"\x00optree\xff"
    with pytest.raises(FarmAPI.FarmPluginException):
        plugin.copyRenderFiles([str(tmp_path / "missing.optree")], context)
    meta = plugin.getInstallationMetadata()
    assert meta.katanaRoot == "/opt/Katana7.0v1"
    assert meta.renderbootCommand == "/opt/Katana7.0v1/bin/renderboot"
    assert plugin.getRenderEnvironment(context) == {"FOUNDRY_LICENSE": "4101@license"}


def test_submit_watch_log_and_list(plugin, tmp_path):
    out = tmp_path / "frames.txt"
    command = "/bin/sh -c 'echo rendering \"$SHOT\" frames $FARM_CHUNK_FIRST-$FARM_CHUNK_LAST licence $FOUNDRY_LICENSE >> %s'" % out
    job_id = plugin.submitJob(job_request(tmp_path, [command], frame_range=(1001, 1004)))
    assert plugin.getJobState(job_id) in FarmAPI.Job.State.kAllStates
    wait_until("Completed", lambda: plugin.getJobState(job_id) == "Completed")
    assert out.read_text() == "rendering sh010 'hero' frames 1001-1004 licence 4101@license\n"
    log = plugin.getRenderLogFilename(job_id)
    assert log and os.path.exists(log)
    jobs = plugin.getJobs([])
    mine = [j for j in jobs if j.jobId == job_id]
    assert len(mine) == 1 and mine[0].state == "Completed" and mine[0].name == "katana test"
    assert mine[0].startTime and mine[0].endTime and mine[0].startTime <= mine[0].endTime
    assert job_id not in [j.jobId for j in plugin.getJobs(["Failed"])]


def test_stop_and_restart(plugin, tmp_path):
    go = tmp_path / "go"
    runs = tmp_path / "runs"
    command = ["/bin/sh", "-c", 'echo run >> "$1"; while [ ! -e "$2" ]; do sleep 0.1; done', "sh", str(runs), str(go)]
    job_id = plugin.submitJob(job_request(tmp_path, [command], name="stop me"))
    wait_until("Running", lambda: plugin.getJobState(job_id) == "Running" and runs.exists())
    plugin.stopJob(job_id)
    wait_until("Cancelled", lambda: plugin.getJobState(job_id) == "Cancelled")
    go.write_text("go")
    plugin.startJob(job_id)
    wait_until("Completed after restart", lambda: plugin.getJobState(job_id) == "Completed")
    assert runs.read_text() == "run\nrun\n"
    plugin.stopJob(job_id)  # stopping a finished job changes nothing
    assert plugin.getJobState(job_id) == "Completed"


def test_failures_and_unknown_jobs_raise_farm_exceptions(plugin, tmp_path):
    job_id = plugin.submitJob(job_request(tmp_path, [["/bin/sh", "-c", "exit 3"]]))
    wait_until("Failed", lambda: plugin.getJobState(job_id) == "Failed")
    with pytest.raises(FarmAPI.JobNotFoundException) as err:
        plugin.getJobState("987654321")
    assert err.value.jobId == "987654321"
    with pytest.raises(FarmAPI.JobNotFoundException):
        plugin.stopJob("987654321")
    with pytest.raises(FarmAPI.FarmPluginException):
        plugin.submitJob(job_request(tmp_path, []))


def test_command_strings_are_split_not_shelled_and_braces_stay_literal(plugin, tmp_path):
    out = tmp_path / "argv"
    command = "/bin/sh -c 'printf \"%%s|\" \"$@\" > %s' sh '{frame}' '$(id)' 'a b'" % out
    job_id = plugin.submitJob(job_request(tmp_path, [command]))
    wait_until("Completed", lambda: plugin.getJobState(job_id) == "Completed")
    assert out.read_text() == "{frame}|$(id)|a b|"


def test_the_plugin_hosted_as_a_farm(queue, tmp_path):
    """FarmBridge.py behind the plug-in host (tools/katana/host), as `farm conformance`
    drives a Katana plug-in: a protocol round trip against the real queue."""
    host = subprocess.Popen(
        [sys.executable, os.path.join(RESOURCES, "host", "farm_katana_host.py"), "--plugins",
         os.path.join(RESOURCES, "Plugins"), "--name", "Farm: studio"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)

    def call(n, method, params):
        host.stdin.write(json.dumps({"id": n, "method": method, "params": params}) + "\n")
        host.stdin.flush()
        reply = json.loads(host.stdout.readline())
        assert reply["id"] == n
        return reply

    try:
        caps = call(0, "hello", {"protocol": 1, "farm": "bridge", "options": {}})["result"]["capabilities"]
        assert caps == {"stage_files": True, "list_jobs": True, "render_log": True, "read_log": True, "stop": True,
                        "start": True, "dependencies": False, "idempotent_submit": False, "job_times": True}
        out = tmp_path / "hosted.txt"
        context = str(uuid.uuid4())
        env = {"FARM_RENDER_CONTEXT": context, "FARM_CHUNK_INDEX": "0"}
        argv = ["/bin/sh", "-c", 'echo "$SHOT $FARM_CHUNK_INDEX" > "$1"', "sh", str(out)]
        submit = {"request": {"name": "hosted", "render_context": context, "commands": [{"argv": argv}],
                              "environment": {"SHOT": "sh020"}, "tags": ["hosted"]},
                  "tasks": [{"index": 0, "frames": None,
                             "steps": [{"command_index": 0, "frame": None, "argv": argv, "env": env}]}]}
        job_id = call(1, "submit", submit)["result"]
        wait_until("the hosted job to complete", lambda: call(2, "job", {"id": job_id})["result"]["state"] == "Completed")
        assert out.read_text() == "sh020 0\n"
        job = call(3, "job", {"id": job_id})["result"]
        assert job["tags"] == ["hosted"] and job["start_time"] > 10 ** 11
        assert call(4, "job", {"id": "987654321"})["error"]["kind"] == "job_not_found"
    finally:
        host.stdin.close()
        host.wait(timeout=10)
