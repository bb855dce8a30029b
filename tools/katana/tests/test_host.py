"""The Katana plug-in host (tools/katana/host/farm_katana_host.py), driven over its protocol.

Each test starts the host as `farm` does (a child process speaking JSON lines on stdin and
stdout) on a Plugins folder: the example plug-in, its broken variants, and small plug-ins
written here. Requests and their expanded tasks are written out by hand (the Rust bridge
expands them in production). No `farm` binary is needed.

Run with:  python3 -m pytest tools/katana/tests/test_host.py
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
KATANA = os.path.dirname(HERE)
HOST = os.path.join(KATANA, "host", "farm_katana_host.py")
EXAMPLES = os.path.join(KATANA, "examples")
EXAMPLE = os.path.join(EXAMPLES, "subprocess-farm", "Plugins")

sys.path.insert(0, os.path.join(KATANA, "host"))
import farm_katana_host  # noqa: E402

ALL_CAPS = {"stage_files": True, "list_jobs": True, "render_log": True, "read_log": True, "stop": True,
            "start": True, "dependencies": False, "idempotent_submit": False, "job_times": True}


class HostError(Exception):
    def __init__(self, error):
        Exception.__init__(self, "%s: %s" % (error.get("kind"), error.get("message")))
        self.kind = error.get("kind")
        self.error = error


class Host(object):
    """The host as a child process; `call` sends one call and reads its reply."""

    def __init__(self, plugins, state_dir, name=None, env=None):
        argv = [sys.executable, HOST, "--plugins", plugins]
        if name:
            argv += ["--name", name]
        environment = dict(os.environ, SUBPROCESS_FARM_DIR=str(state_dir))
        environment.pop("KATANA_ROOT", None)
        environment.update(env or {})
        self.stderr = open(os.path.join(str(state_dir), "host.stderr"), "w+")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     env=environment, universal_newlines=True)
        self.next_id = 0

    def call(self, method, params=None):
        self.next_id += 1
        self.proc.stdin.write(json.dumps({"id": self.next_id, "method": method, "params": params or {}}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the host exited; stderr: %s" % self.stderr_text()
        reply = json.loads(line)
        assert reply["id"] == self.next_id
        if "error" in reply:
            raise HostError(reply["error"])
        return reply["result"]

    def hello(self):
        return self.call("hello", {"protocol": 1, "farm": "test", "options": {}})

    def stderr_text(self):
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.stderr.close()


@pytest.fixture
def open_host(tmp_path):
    hosts = []

    def start(plugins=EXAMPLE, name=None, env=None, hello=True):
        state = tmp_path / ("state-%d" % len(hosts))
        state.mkdir()
        host = Host(plugins, state, name=name, env=env)
        hosts.append(host)
        if hello:
            host.hello()
        return host

    yield start
    for host in hosts:
        host.close()


def request(name, argvs, frames=None, chunk_size=1, environment=None, cwd=None, tags=None):
    """A request and its tasks as the bridge sends them: per-frame repeat, FARM_* per step."""
    context = str(uuid.uuid4())
    req = {"name": name, "render_context": context, "render_type": "disk",
           "commands": [{"argv": a} for a in argvs], "environment": environment or {}, "tags": tags or ["t"]}
    if cwd:
        req["working_directory"] = cwd
    tasks = []
    if frames:
        req["frames"] = "%d-%d" % (frames[0], frames[-1])
        req["chunk_size"] = chunk_size
        for index in range(0, len(frames), chunk_size):
            chunk = frames[index:index + chunk_size]
            steps = []
            for frame in chunk:
                env = {"FARM_RENDER_CONTEXT": context, "FARM_CHUNK_INDEX": str(index // chunk_size),
                       "FARM_CHUNK_FIRST": str(chunk[0]), "FARM_CHUNK_LAST": str(chunk[-1]), "FARM_FRAME": str(frame)}
                for i, argv in enumerate(argvs):
                    steps.append({"command_index": i, "frame": frame,
                                  "argv": [a.replace("{frame}", str(frame)) for a in argv], "env": env})
            tasks.append({"index": index // chunk_size, "frames": "%d-%d" % (chunk[0], chunk[-1]), "steps": steps})
    else:
        env = {"FARM_RENDER_CONTEXT": context, "FARM_CHUNK_INDEX": "0"}
        tasks.append({"index": 0, "frames": None,
                      "steps": [{"command_index": i, "frame": None, "argv": a, "env": env} for i, a in enumerate(argvs)]})
    return {"request": req, "tasks": tasks}


def sh(script, *args):
    return ["/bin/sh", "-c", script, "sh"] + list(args)


def wait_for(what, probe, timeout=30):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail("timed out waiting for %s (last: %r)" % (what, last))


def wait_end(host, job_id):
    return wait_for("job %s to finish" % job_id,
                    lambda: (lambda j: j if j["state"] in ("Completed", "Failed", "Cancelled") else None)(
                        host.call("job", {"id": job_id})))


# -- the example plug-in ----------------------------------------------------------------------


def test_hello_reports_what_the_plugin_overrides(open_host):
    host = open_host(hello=False)
    assert host.hello() == {"protocol": 1, "adapter": "katana-plugin", "capabilities": ALL_CAPS}


def test_a_job_round_trip(open_host, tmp_path):
    host = open_host()
    out = tmp_path / "out"
    workdir = tmp_path / "dir with 'quotes' and $dollar"
    workdir.mkdir()
    call = request("round trip", [sh('printf "%s|%s|%s\\n" "$SHOT" "$(pwd -P)" "$FARM_CHUNK_INDEX" >> "$1"; echo to-stderr >&2',
                                     str(out))],
                   environment={"SHOT": "it's \"sh010\" $HOME"}, cwd=str(workdir), tags=["t", "katana"])
    before = int(time.time() * 1000)
    job_id = host.call("submit", call)
    job = wait_end(host, job_id)
    assert job["state"] == "Completed", job
    assert out.read_text() == "it's \"sh010\" $HOME|%s|0\n" % os.path.realpath(str(workdir))
    assert job["name"] == "round trip" and job["tags"] == ["t", "katana"] and job["attempt"] == 1
    assert job["render_context"] == call["request"]["render_context"]
    assert before - 1000 <= job["submit_time"] <= job["start_time"] <= job["end_time"] <= int(time.time() * 1000)
    log = host.call("render_log_filename", {"id": job_id})
    assert log == job["render_log_filename"] and "to-stderr" in open(log).read()
    chunk = host.call("read_log", {"id": job_id, "offset": 0})
    assert "to-stderr" in chunk["data"] and chunk["complete"] and chunk["next_offset"] == os.path.getsize(log)
    rest = host.call("read_log", {"id": job_id, "offset": chunk["next_offset"]})
    assert rest == {"data": "", "next_offset": chunk["next_offset"], "complete": True}
    assert [j["id"] for j in host.call("list_jobs", {"filter": {"tag": "katana"}})] == [job_id]
    assert [j["id"] for j in host.call("list_jobs", {"filter": {"name": "round trip"}})] == [job_id]
    assert host.call("list_jobs", {"filter": {"states": ["Failed"]}}) == []


def test_chunks_frames_and_the_failure_reason(open_host, tmp_path):
    host = open_host()
    frames = tmp_path / "frames"
    frames.mkdir()
    call = request("frames", [sh('echo "$FARM_CHUNK_INDEX $FARM_CHUNK_FIRST $FARM_CHUNK_LAST $FARM_FRAME" > "$1/$2"',
                                 str(frames), "{frame}")], frames=list(range(1, 8)), chunk_size=3)
    job = wait_end(host, host.call("submit", call))
    assert job["state"] == "Completed"
    for frame in range(1, 8):
        chunk = (frame - 1) // 3
        assert (frames / str(frame)).read_text() == "%d %d %d %d\n" % (chunk, chunk * 3 + 1, min(chunk * 3 + 3, 7), frame)
    failed = wait_end(host, host.call("submit", request("fails", [sh("true"), sh("exit 4"), sh("echo never")])))
    assert failed["state"] == "Failed" and "exit code 4" in failed["reason"], failed


def test_stop_kills_and_start_runs_a_new_attempt(open_host, tmp_path):
    host = open_host()
    beat = tmp_path / "beat"
    job_id = host.call("submit", request("beat", [sh('while :; do echo b >> "$1"; sleep 0.05; done', str(beat))]))
    wait_for("the heartbeat", beat.exists)
    assert host.call("start", {"id": job_id}) == job_id  # running: nothing changes
    assert host.call("job", {"id": job_id})["attempt"] == 1
    assert host.call("stop", {"id": job_id}) is None
    assert wait_end(host, job_id)["state"] == "Cancelled"
    size = beat.stat().st_size
    time.sleep(0.5)
    assert beat.stat().st_size == size, "the heartbeat went on after stop"
    assert host.call("start", {"id": job_id}) == job_id
    wait_for("the second attempt to beat", lambda: beat.stat().st_size > size)
    assert host.call("job", {"id": job_id})["attempt"] == 2
    host.call("stop", {"id": job_id})
    assert wait_end(host, job_id)["state"] == "Cancelled"


@pytest.mark.parametrize("method", ["job", "stop", "start", "render_log_filename", "read_log"])
@pytest.mark.parametrize("job_id", ["987654321", "no-such-job"])
def test_unknown_ids_give_job_not_found(open_host, method, job_id):
    host = open_host()
    with pytest.raises(HostError) as e:
        host.call(method, {"id": job_id, "offset": 0})
    assert e.value.kind == "job_not_found" and e.value.error["job_id"] == job_id


def test_staging(open_host, tmp_path):
    host = open_host()
    context = str(uuid.uuid4())
    temp = host.call("create_temp_directory", {"render_context": context})
    assert os.path.isdir(temp) and host.call("create_temp_directory", {"render_context": context}) == temp
    assert host.call("create_temp_directory", {"render_context": str(uuid.uuid4())}) != temp
    a, b = tmp_path / "a.optree", tmp_path / "sub" / "a.optree"
    b.parent.mkdir()
    a.write_bytes(bytes(range(256)))
    b.write_bytes(b"other")
    copies = host.call("copy_render_files", {"files": [str(a), str(b)], "render_context": context})
    assert open(copies[str(a)], "rb").read() == bytes(range(256)) and open(copies[str(b)], "rb").read() == b"other"
    with pytest.raises(HostError) as e:
        host.call("copy_render_files", {"files": [str(a), str(tmp_path / "missing")], "render_context": context})
    assert e.value.kind == "invalid_request" and e.value.error["field"] == "files[1]"
    assert str(tmp_path / "missing") in str(e.value)


def test_installation_and_environment(open_host):
    with pytest.raises(HostError) as e:
        open_host().call("installation_metadata")
    assert e.value.kind == "config" and "KATANA_ROOT" in str(e.value)
    host = open_host(env={"KATANA_ROOT": "/opt/Katana7.0v1"})
    assert host.call("installation_metadata") == {"katana_root": "/opt/Katana7.0v1", "render_plugin_dso_paths": {},
                                                  "renderboot_command": "/opt/Katana7.0v1/bin/renderboot"}
    context = str(uuid.uuid4())
    assert host.call("render_environment", {"render_context": context}) == {"SUBPROCESS_FARM_CONTEXT": context}


def test_render_shows_the_job_request(open_host):
    host = open_host()
    call = request("render", [["echo", "{frame}"]], frames=[1, 2, 3], chunk_size=2, environment={"SCENE": "x"})
    first = host.call("render", call)
    assert first == host.call("render", call)
    doc = json.loads(first["files"][0]["contents"])
    assert first["files"][0]["name"] == "jobRequest.json"
    assert doc["jobName"] == "render" and doc["renderType"] == "diskRender" and doc["frameRange"] == [1, 3]
    assert doc["frames"] == [1, 2, 3] and doc["chunkSize"] == 2
    assert doc["environment"] == {"SCENE": "x", "SUBPROCESS_FARM_CONTEXT": call["request"]["render_context"]}
    assert [t["frames"] for t in doc["tasks"]] == [[1, 2], [3]]
    assert doc["tasks"][1]["commands"][0] == {"argv": ["echo", "3"], "env": call["tasks"][1]["steps"][0]["env"]}
    # The self-contained commands carry each step's FARM_* variables.
    last = doc["commands"][-1]
    assert last[0] == "/usr/bin/env" and "FARM_FRAME=3" in last and last[-2:] == ["echo", "3"]


def test_self_contained_commands():
    assert farm_katana_host.self_contained(["a"], {}) == ["a"]
    assert farm_katana_host.self_contained(["a=b", "x"], {"F": "1"}) == [
        "/usr/bin/env", "F=1", "/bin/sh", "-c", 'exec "$0" "$@"', "a=b", "x"]
    out = subprocess.run(farm_katana_host.self_contained(["/bin/sh", "-c", 'printf "%s" "$F"'], {"F": "v 1"}),
                         stdout=subprocess.PIPE).stdout
    assert out == b"v 1"


def test_parse_frames_and_utf8_cut():
    assert farm_katana_host.parse_frames("1-10x3,12") == [1, 4, 7, 10, 12]
    assert farm_katana_host.utf8_complete_length("é".encode()[:1]) == 0
    assert farm_katana_host.utf8_complete_length("aé".encode()) == 3


# -- the broken variants: each flaw the host is meant to see ---------------------------------


def broken(name):
    return os.path.join(EXAMPLES, "broken-" + name, "Plugins")


def test_broken_states_is_a_scheduler_error_naming_the_state(open_host):
    host = open_host(broken("states"))
    job_id = host.call("submit", request("s", [sh("true")]))
    with pytest.raises(HostError) as e:
        wait_for("never", lambda: host.call("job", {"id": job_id}))
    assert e.value.kind == "scheduler" and "kAllStates" in str(e.value)
    assert any("'%s'" % word in str(e.value) for word in ("queued", "running", "done"))
    with pytest.raises(HostError) as e:
        host.call("list_jobs", {"filter": {}})
    assert e.value.kind == "scheduler" and "ValueError" in str(e.value)


@pytest.mark.parametrize("method", ["job", "stop", "start", "render_log_filename", "read_log"])
def test_broken_notfound_says_jobnotfoundexception_was_not_raised(open_host, method):
    host = open_host(broken("notfound"))
    with pytest.raises(HostError) as e:
        host.call(method, {"id": "987654321", "offset": 0})
    assert e.value.kind == "scheduler" and "did not raise JobNotFoundException" in str(e.value)


def test_broken_seconds_is_caught(open_host):
    host = open_host(broken("seconds"))
    job_id = host.call("submit", request("s", [sh("true")]))
    with pytest.raises(HostError) as e:
        wait_end(host, job_id)
    assert e.value.kind == "scheduler" and "looks like seconds" in str(e.value)


def test_broken_copy_is_caught(open_host, tmp_path):
    host = open_host(broken("copy"))
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    with pytest.raises(HostError) as e:
        host.call("copy_render_files", {"files": [str(a), str(b)], "render_context": str(uuid.uuid4())})
    assert e.value.kind == "scheduler" and "no copy of %s" % b in str(e.value)


def test_broken_metadata_is_caught(open_host):
    host = open_host(broken("metadata"))
    with pytest.raises(HostError) as e:
        host.call("installation_metadata")
    assert e.value.kind == "scheduler" and "not a BaseFarmPlugin.InstallationMetadata" in str(e.value)


def test_broken_stop_leaves_the_process_running(open_host, tmp_path):
    """The host cannot see processes: this flaw is the conformance suite's to find (its
    stop check watches a heartbeat). Here: the flaw is real."""
    host = open_host(broken("stop"))
    beat = tmp_path / "beat"
    pid_file = tmp_path / "pid"
    job_id = host.call("submit", request("beat", [sh('echo $$ > "$2"; while :; do echo b >> "$1"; sleep 0.05; done',
                                                     str(beat), str(pid_file))]))
    wait_for("the heartbeat", beat.exists)
    host.call("stop", {"id": job_id})
    assert host.call("job", {"id": job_id})["state"] == "Cancelled"
    try:
        size = beat.stat().st_size
        wait_for("the heartbeat to go on", lambda: beat.stat().st_size > size, timeout=5)
    finally:
        os.killpg(os.getpgid(int(pid_file.read_text())), signal.SIGKILL)


# -- plug-ins written here --------------------------------------------------------------------


def plugins(tmp_path, **modules):
    folder = tmp_path / "Plugins"
    folder.mkdir()
    for name, text in modules.items():
        (folder / (name + ".py")).write_text(textwrap.dedent(text))
    return str(folder)


MINIMAL = """
    from Katana import FarmAPI

    class Minimal(FarmAPI.BaseFarmPlugin):
        jobs = {}

        def submitJob(self, jobRequest):
            print("a plug-in that prints to stdout must not break the protocol")
            job_id = "m%d" % (len(self.jobs) + 1)
            self.jobs[job_id] = FarmAPI.Job.State.kCompleted
            return job_id

        def getJobState(self, jobId):
            if jobId not in self.jobs:
                raise FarmAPI.JobNotFoundException(jobId, "never submitted")
            return self.jobs[jobId]

    PluginRegistry = [("FarmPlugin", 2.0, "Minimal", Minimal), ("SomethingElse", 1.0, "Other", object)]
"""


def test_a_minimal_plugin_disables_what_it_does_not_implement(open_host, tmp_path):
    host = open_host(plugins(tmp_path, Minimal=MINIMAL), hello=False)
    assert host.hello()["capabilities"] == {k: False for k in ALL_CAPS}
    job_id = host.call("submit", request("m", [sh("true")]))
    assert host.call("job", {"id": job_id}) == {"id": job_id, "name": "m", "state": "Completed", "attempt": 1,
                                                "submit_time": host.call("job", {"id": job_id})["submit_time"],
                                                "render_context": host.call("job", {"id": job_id})["render_context"],
                                                "tags": ["t"]}
    for method in ("stop", "start", "list_jobs", "read_log", "render_log_filename", "create_temp_directory"):
        with pytest.raises(HostError) as e:
            host.call(method, {"id": job_id, "filter": {}, "render_context": str(uuid.uuid4())})
        assert e.value.kind == "unsupported"
    with pytest.raises(HostError) as e:
        host.call("installation_metadata")
    assert e.value.kind == "config"
    assert host.call("render_environment", {"render_context": str(uuid.uuid4())}) == {}
    assert "must not break the protocol" in host.stderr_text()


def test_choosing_among_plugins(open_host, tmp_path):
    folder = plugins(tmp_path, Minimal=MINIMAL, Second=MINIMAL.replace('"Minimal", Minimal', '"Second", Minimal'),
                     Broken="raise ImportError('no such studio module')\n")
    with pytest.raises(HostError) as e:
        open_host(folder)
    assert e.value.kind == "config" and "'Minimal', 'Second'" in str(e.value) and "no such studio module" in str(e.value)
    with pytest.raises(HostError) as e:
        open_host(folder, name="Third")
    assert e.value.kind == "config" and "no farm plug-in named 'Third'" in str(e.value)
    assert open_host(folder, name="Second").call("submit", request("x", [sh("true")])) == "m1"


def test_a_bare_exception_for_an_unknown_id_is_not_job_not_found(open_host, tmp_path):
    text = MINIMAL.replace("raise FarmAPI.JobNotFoundException(jobId, \"never submitted\")", "raise KeyError(jobId)")
    host = open_host(plugins(tmp_path, Minimal=text))
    with pytest.raises(HostError) as e:
        host.call("job", {"id": "nope"})
    assert e.value.kind == "scheduler" and "KeyError" in str(e.value) and "JobNotFoundException" in str(e.value)


def test_a_plugin_that_is_not_a_base_farm_plugin_is_refused(open_host, tmp_path):
    folder = plugins(tmp_path, Odd='class Odd(object):\n    pass\nPluginRegistry = [("FarmPlugin", 2.0, "Odd", Odd)]\n')
    with pytest.raises(HostError) as e:
        open_host(folder)
    assert e.value.kind == "config" and "not a FarmAPI.BaseFarmPlugin subclass" in str(e.value)
