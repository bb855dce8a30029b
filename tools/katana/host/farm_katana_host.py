#!/usr/bin/env python3
"""farm_katana_host: makes a Katana farm plug-in (a FarmAPI.BaseFarmPlugin) a farm.

It loads a Katana Plugins folder the way Katana does (imports every module and package in
it and reads each one's `PluginRegistry`), picks the entry of type "FarmPlugin" with the
given registered name (or the only one), instantiates it, and speaks the external-adapter
protocol (docs/external-adapters.md: JSON lines on stdin and stdout) on its behalf, so
`farm` and `farm conformance` use the plug-in like any other farm. The plug-in sees the
stand-in `Katana.FarmAPI` next to this file (injected into sys.modules before loading).

The host is strict where the plug-in breaks FarmAPI's contract, so the conformance suite
rejects it: a state outside Job.State.kAllStates, an unknown id that does not raise
JobNotFoundException, times in seconds instead of milliseconds, a copyRenderFiles that loses
a file or whose copy differs, a getInstallationMetadata that returns something else than an
InstallationMetadata are all `scheduler` errors naming what the plug-in did. What the
mapping is, method by method: docs/katana.md, "Testing your own Katana farm plug-in".

Usage:
    farm_katana_host.py --plugins DIR [--name "Registered Name"]   # serve the protocol
    farm_katana_host.py --plugins DIR --list                       # registered farm plug-ins

Standard library only; Python 3.9+.
"""

import argparse
import importlib.util
import json
import os
import sys
import time
import traceback

PROTOCOL = 1
HOST_DIR = os.path.dirname(os.path.abspath(__file__))

# Below this, a time is not milliseconds since the epoch: 1e11 ms is March 1973, while
# 1e11 *seconds* is the year 5138 — so any current time in seconds lands below it.
MIN_EPOCH_MS = 10 ** 11
# Above this it is not milliseconds either (1e14 ms is the year 5138; microseconds now are ~1.7e15).
MAX_EPOCH_MS = 10 ** 14

TERMINAL = ("Completed", "Cancelled", "Failed")
RENDER_TYPES = {"disk": "diskRender", "preview": "previewRender", "live": "liveRender"}

# How long a copy may take to appear after copyRenderFiles returns (the seed allows the
# copy to complete after the call, before the job starts).
COPY_GRACE_SECONDS = 5.0
READ_LOG_LIMIT = 1 << 20
REASON_TAIL_BYTES = 4096


def stand_in():
    """The Katana.FarmAPI module plug-ins import: the maintained stand-in next to this file.
    Injected into sys.modules before any plug-in loads (a real Katana is never imported)."""
    if "Katana" not in sys.modules:
        if HOST_DIR not in sys.path:
            sys.path.insert(0, HOST_DIR)
        import Katana  # noqa: F401  (the stand-in package next to this file)
        import Katana.FarmAPI  # noqa: F401
    return sys.modules["Katana.FarmAPI"]


FarmAPI = stand_in()


def now_ms():
    return int(time.time() * 1000)


class FarmError(Exception):
    """An error with a protocol kind (job_not_found, invalid_request, scheduler, ...)."""

    def __init__(self, kind, message, **extra):
        Exception.__init__(self, message)
        self.kind = kind
        self.extra = extra

    def to_wire(self):
        error = {"kind": self.kind, "message": str(self)}
        error.update(self.extra)
        return error


# -- loading a Plugins folder the way Katana does ----------------------------------------


def plugins_folder(path):
    """A Plugins folder, or a Katana resource folder holding one."""
    path = os.path.abspath(path)
    if os.path.basename(os.path.normpath(path)) != "Plugins" and os.path.isdir(os.path.join(path, "Plugins")):
        return os.path.join(path, "Plugins")
    return path


def load_registry(folder):
    """Imports every module (`X.py`) and package (`X/__init__.py`) of `folder`, as Katana
    does, and returns (entries of every PluginRegistry, problems). A module that fails to
    import is reported and skipped, as Katana logs and skips it."""
    entries, problems = [], []
    if not os.path.isdir(folder):
        return entries, ["%s is not a folder" % folder]
    for filename in sorted(os.listdir(folder)):
        path = os.path.join(folder, filename)
        if filename.startswith((".", "_")):
            continue
        if filename.endswith(".py") and os.path.isfile(path):
            module_name = filename[:-3]
            spec = importlib.util.spec_from_file_location(module_name, path)
        elif os.path.isfile(os.path.join(path, "__init__.py")):
            module_name = filename
            spec = importlib.util.spec_from_file_location(module_name, os.path.join(path, "__init__.py"),
                                                          submodule_search_locations=[path])
        else:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # Katana logs a broken plug-in module and goes on
            sys.modules.pop(module_name, None)
            problems.append("%s: %s: %s" % (path, type(e).__name__, e))
            traceback.print_exc(file=sys.stderr)
            continue
        for entry in getattr(module, "PluginRegistry", None) or []:
            entries.append((path, entry))
    return entries, problems


def farm_plugins(folder):
    """[(registered name, class, module path)] of the "FarmPlugin" entries, and problems."""
    entries, problems = load_registry(folder)
    found = []
    for path, entry in entries:
        try:
            kind, _version, name, cls = entry
        except (TypeError, ValueError):
            problems.append("%s: a PluginRegistry entry is not (type, version, name, class): %r" % (path, entry))
            continue
        if kind != "FarmPlugin":
            continue
        if not (isinstance(cls, type) and issubclass(cls, FarmAPI.BaseFarmPlugin)):
            problems.append("%s: %r registers %r, which is not a FarmAPI.BaseFarmPlugin subclass" % (path, name, cls))
            continue
        found.append((str(name), cls, path))
    return found, problems


def choose(found, problems, folder, name=None):
    """The class registered as `name`, or the only farm plug-in; a `config` error otherwise."""
    names = [n for n, _, _ in found]
    extra = ("; problems: " + "; ".join(problems)) if problems else ""
    if name is not None:
        for n, cls, _ in found:
            if n == name:
                return cls
        raise FarmError("config", "no farm plug-in named %r in %s (registered: %s)%s"
                        % (name, folder, ", ".join(repr(n) for n in names) or "none", extra))
    if len(found) == 1:
        return found[0][1]
    if not found:
        raise FarmError("config", "%s registers no farm plug-in (PluginRegistry entries of type "
                        "\"FarmPlugin\")%s" % (folder, extra))
    raise FarmError("config", "%s registers %d farm plug-ins (%s): choose one with --name (settings.name)%s"
                    % (folder, len(found), ", ".join(repr(n) for n in names), extra))


def overrides(cls, method):
    """Whether `cls` implements `method` itself rather than inheriting BaseFarmPlugin's."""
    mine = getattr(cls, method, None)
    return mine is not None and mine is not getattr(FarmAPI.BaseFarmPlugin, method, None)


def capabilities_of(cls):
    """What the plug-in's surface supports: optional methods it does not override disable
    the feature (the seed: "not implementing them will disable the corresponding
    functionality"). read_log is derived from the render log file; FarmAPI has no
    dependencies, and the host does not de-duplicate render contexts; start and end times
    come from getJobs."""
    log = overrides(cls, "getRenderLogFilename")
    return {
        "stage_files": overrides(cls, "createTempDirectory") and overrides(cls, "copyRenderFiles"),
        "list_jobs": overrides(cls, "getJobs"),
        "render_log": log,
        "read_log": log,
        "stop": overrides(cls, "stopJob"),
        "start": overrides(cls, "startJob"),
        "dependencies": False,
        "idempotent_submit": False,
        # Times come from getJobs' entries: without it a job has none to report.
        "job_times": overrides(cls, "getJobs"),
    }


# -- frames ---------------------------------------------------------------------------------


def parse_frames(text):
    """A canonical frame set (`1-7`, `1-10x3`, `1,3,7-9`) as a sorted list of ints."""
    if text is None:
        return None
    frames = set()
    for piece in str(text).split(","):
        piece = piece.strip()
        if not piece:
            continue
        step = 1
        if "x" in piece:
            piece, s = piece.split("x", 1)
            step = int(s)
        if "-" in piece:
            a, b = piece.split("-", 1)
            frames.update(range(int(a), int(b) + 1, step))
        else:
            frames.add(int(piece))
    return sorted(frames)


def self_contained(argv, env):
    """A step as one argv list that runs with its FARM_* variables: `/usr/bin/env NAME=VALUE
    ... argv` (a program whose name holds `=` goes through `/bin/sh -c 'exec "$0" "$@"'`,
    since env would take it for a variable)."""
    argv = list(argv)
    if not env:
        return argv
    assignments = ["%s=%s" % (k, v) for k, v in sorted(env.items())]
    if "=" in argv[0]:
        return ["/usr/bin/env"] + assignments + ["/bin/sh", "-c", 'exec "$0" "$@"'] + argv
    return ["/usr/bin/env"] + assignments + argv


def utf8_complete_length(data):
    """len(data) without a UTF-8 sequence cut short at its end (kept for the next read)."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte & 0xC0 == 0x80:  # continuation byte: keep looking for the lead
            continue
        if byte & 0x80 == 0:
            return n
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
        return n if back >= need else n - back
    return n


# -- the host -----------------------------------------------------------------------------


class JobInfo(object):
    """What the host remembers of a job it submitted (FarmAPI.Job has no tags, no submit
    time, no attempt): kept in memory for the life of the host process."""

    def __init__(self, name, render_context, tags, submit_time):
        self.name = name
        self.render_context = render_context
        self.tags = list(tags)
        self.submit_time = submit_time
        self.attempt = 1


class Host(object):
    """One plug-in instance behind the external-adapter protocol."""

    def __init__(self, plugin, registered_name):
        self.plugin = plugin
        self.registered_name = registered_name
        self.cls = type(plugin)
        self.caps = capabilities_of(self.cls)
        self.jobs = {}

    # -- calling the plug-in -----------------------------------------------------------

    def call(self, method, *args):
        """Calls a plug-in method; FarmAPI exceptions become protocol errors."""
        where = "%s(%s)" % (method, ", ".join(repr(a) for a in args if not isinstance(a, FarmAPI.FarmPluginManager.JobRequest)))
        try:
            return getattr(self.plugin, method)(*args)
        except FarmAPI.JobNotFoundException as e:
            job_id = args[0] if args and isinstance(args[0], str) else getattr(e, "jobId", "")
            raise FarmError("job_not_found", "%s: %s" % (where, e), job_id=str(job_id))
        except NotImplementedError:
            raise FarmError("unsupported", "the plug-in %r does not implement %s" % (self.registered_name, method))
        except FarmAPI.FarmPluginException as e:
            raise FarmError("scheduler", "%s: %s" % (where, e))
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            hint = ""
            if method in ("getJobState", "getRenderLogFilename", "startJob", "stopJob"):
                hint = " (an unknown id must raise FarmAPI.JobNotFoundException)"
            raise FarmError("scheduler", "%s raised %s: %s, not a FarmAPI.FarmPluginException%s"
                            % (where, type(e).__name__, e, hint))

    def require(self, capability, method):
        if not self.caps[capability]:
            raise FarmError("unsupported", "the plug-in %r does not implement %s" % (self.registered_name, method))

    def checked_state(self, state, where):
        if state is None:
            raise FarmError("scheduler", "%s returned None: the plug-in did not raise JobNotFoundException "
                            "(an unknown id must raise FarmAPI.JobNotFoundException; a known one has a state "
                            "from Job.State.kAllStates)" % where)
        if not isinstance(state, str) or state not in FarmAPI.Job.State.kAllStates:
            raise FarmError("scheduler", "%s returned the state %r, which is not one of Job.State.kAllStates %s"
                            % (where, state, ", ".join(FarmAPI.Job.State.kAllStates)))
        return state

    def state_of(self, job_id):
        return self.checked_state(self.call("getJobState", job_id), "getJobState(%r)" % job_id)

    def confirm_known(self, method, job_id):
        """After an id method returned normally: if the job does not exist, the plug-in
        swallowed the unknown id instead of raising JobNotFoundException."""
        try:
            self.state_of(job_id)
        except FarmError as e:
            if e.kind != "job_not_found":
                raise
            raise FarmError("scheduler", "%s(%r) returned normally for a job getJobState says does not exist: "
                            "the plug-in did not raise JobNotFoundException" % (method, job_id))

    @staticmethod
    def checked_time(value, what):
        """A FarmAPI.Job time: milliseconds since the epoch, or None/0 when not set."""
        if value is None or value == 0:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FarmError("scheduler", "%s is %r, not a number of milliseconds since the epoch" % (what, value))
        if value < 0:
            raise FarmError("scheduler", "%s is %r, a negative time" % (what, value))
        if value < MIN_EPOCH_MS:
            raise FarmError("scheduler", "%s is %r, which looks like seconds since the epoch (%s): FarmAPI.Job "
                            "times are milliseconds" % (what, value, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))))
        if value > MAX_EPOCH_MS:
            raise FarmError("scheduler", "%s is %r, which looks like microseconds or nanoseconds since the epoch: "
                            "FarmAPI.Job times are milliseconds" % (what, value))
        return int(value)

    def listed(self):
        """Every Job of getJobs([]), checked."""
        jobs = self.call("getJobs", [])
        if jobs is None or isinstance(jobs, (str, bytes, dict)):
            raise FarmError("scheduler", "getJobs([]) returned %r, not a list of FarmAPI.Job" % (jobs,))
        out = []
        for job in jobs:
            if not isinstance(job, FarmAPI.Job):
                raise FarmError("scheduler", "getJobs([]) returned %r, not a FarmAPI.Job" % (job,))
            out.append(job)
        return out

    def find_listed(self, job_id):
        if not self.caps["list_jobs"]:
            return None
        for job in self.listed():
            if str(job.jobId) == job_id:
                return job
        return None

    def reason_from_log(self, job, job_id):
        """A Failed job's reason: the plug-in's own (a `reason` attribute on its Job, which
        FarmAPI does not define) or the last line of its render log."""
        reason = getattr(job, "reason", None) if job is not None else None
        if isinstance(reason, str) and reason.strip():
            return reason.strip()
        path = getattr(job, "renderLogFilename", None) if job is not None else None
        if not path and self.caps["render_log"]:
            try:
                path = self.call("getRenderLogFilename", job_id)
            except FarmError:
                path = None
        if not isinstance(path, str) or not path:
            return None
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - REASON_TAIL_BYTES))
                tail = f.read().decode("utf-8", "replace")
        except OSError:
            return None
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        return lines[-1][:500] if lines else None

    def record(self, job_id, state, job):
        """The protocol's Job for a plug-in job (`job` is its FarmAPI.Job, when listed)."""
        info = self.jobs.get(job_id)
        rec = {"id": job_id, "state": state, "attempt": info.attempt if info else 1}
        name = getattr(job, "name", None) if job is not None else None
        rec["name"] = " ".join(str(name).split()) if name else (info.name if info else job_id)
        if job is not None:
            listed_state = getattr(job, "state", None)
            self.checked_state(listed_state, "getJobs([]) for job %r" % job_id)
            start = self.checked_time(getattr(job, "startTime", None), "startTime of job %r" % job_id)
            end = self.checked_time(getattr(job, "endTime", None), "endTime of job %r" % job_id)
            if start is not None:
                rec["start_time"] = start
            if end is not None:
                rec["end_time"] = end
            log = getattr(job, "renderLogFilename", None)
            if log:
                rec["render_log_filename"] = str(log)
        if info is not None:
            rec["submit_time"] = info.submit_time
            rec["render_context"] = info.render_context
            if info.tags:
                rec["tags"] = info.tags
        if state == "Failed":
            reason = self.reason_from_log(job, job_id)
            if reason:
                rec["reason"] = reason
        return rec

    def job_request(self, request, tasks):
        """Our request and its expanded tasks as a FarmPluginManager.JobRequest
        (docs/katana.md gives the mapping)."""
        context = str(request["render_context"])
        environment = {}
        if overrides(self.cls, "getRenderEnvironment"):
            environment.update(self.render_environment({"render_context": context}))
        environment.update(request.get("environment") or {})
        JobRequest = FarmAPI.FarmPluginManager.JobRequest
        task_objects, commands, frames = [], [], set()
        for task in tasks:
            steps = [JobRequest.Command(step["argv"], step.get("env") or {}) for step in task["steps"]]
            task_frames = parse_frames(task.get("frames"))
            frames.update(task_frames or [])
            task_objects.append(JobRequest.Task(task["index"], task_frames, steps))
            commands.extend(self_contained(s.argv, s.env) for s in steps)
        frames = sorted(frames) or None
        return JobRequest(
            renderContextName=context,
            commands=commands,
            renderType=RENDER_TYPES.get(request.get("render_type") or "disk", "diskRender"),
            frameRange=(frames[0], frames[-1]) if frames else None,
            environment=environment,
            jobName=request["name"],
            workingDirectory=request.get("working_directory"),
            frames=frames,
            chunkSize=request.get("chunk_size") if frames else None,
            tasks=task_objects,
        )

    @staticmethod
    def job_request_json(job_request):
        doc = dict(vars(job_request))
        doc["frameRange"] = list(doc["frameRange"]) if doc["frameRange"] else None
        doc["tasks"] = [{"index": t.index, "frames": t.frames,
                         "commands": [{"argv": c.argv, "env": c.env} for c in t.commands]}
                        for t in job_request.tasks]
        return doc

    # -- protocol methods ---------------------------------------------------------------

    def hello(self, params):
        if params.get("protocol") != PROTOCOL:
            raise FarmError("config", "unsupported protocol %r (this host speaks %d)" % (params.get("protocol"), PROTOCOL))
        return {"protocol": PROTOCOL, "adapter": "katana-plugin", "capabilities": self.caps}

    def create_temp_directory(self, params):
        self.require("stage_files", "createTempDirectory")
        path = self.call("createTempDirectory", str(params["render_context"]))
        if not isinstance(path, str) or not path:
            raise FarmError("scheduler", "createTempDirectory returned %r, not a path" % (path,))
        return path

    def copy_render_files(self, params):
        self.require("stage_files", "copyRenderFiles")
        files = [str(f) for f in params["files"]]
        context = str(params["render_context"])
        missing = [i for i, f in enumerate(files) if not os.path.isfile(f)]
        try:
            copies = self.call("copyRenderFiles", list(files), context)
        except FarmError as e:
            if missing:
                i = missing[0]
                raise FarmError("invalid_request", "%s: no such file (%s)" % (files[i], e), field="files[%d]" % i)
            raise
        if missing:
            raise FarmError("scheduler", "copyRenderFiles accepted %s, which does not exist, without raising "
                            "FarmPluginException" % files[missing[0]])
        if not isinstance(copies, dict):
            raise FarmError("scheduler", "copyRenderFiles returned %r, not a map of each file to its copy" % (copies,))
        out = {}
        for source in files:
            copy = copies.get(source)
            if copy is None:
                raise FarmError("scheduler", "copyRenderFiles returned no copy of %s (it returned %d of %d files)"
                                % (source, len(copies), len(files)))
            if not isinstance(copy, str) or not copy:
                raise FarmError("scheduler", "copyRenderFiles returned %r as the copy of %s, not a path" % (copy, source))
            self.expect_same_bytes(source, copy)
            out[source] = copy
        return out

    @staticmethod
    def expect_same_bytes(source, copy):
        with open(source, "rb") as f:
            want = f.read()
        deadline = time.time() + COPY_GRACE_SECONDS
        while True:
            try:
                with open(copy, "rb") as f:
                    got = f.read()
            except OSError as e:
                got, problem = None, "cannot be read (%s)" % e
            else:
                problem = "holds %d bytes that differ from the source's %d" % (len(got), len(want))
            if got == want:
                return
            if time.time() > deadline:
                raise FarmError("scheduler", "copyRenderFiles: the copy %s of %s %s" % (copy, source, problem))
            time.sleep(0.1)

    def installation_metadata(self, params):
        if not overrides(self.cls, "getInstallationMetadata"):
            raise FarmError("config", "the plug-in %r does not implement getInstallationMetadata" % self.registered_name)
        try:
            meta = self.plugin.getInstallationMetadata()
        except FarmAPI.FarmPluginException as e:
            # The plug-in says it does not know the installation: a configuration matter.
            raise FarmError("config", "getInstallationMetadata(): %s" % e)
        except NotImplementedError:
            raise FarmError("config", "the plug-in %r does not implement getInstallationMetadata" % self.registered_name)
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            raise FarmError("scheduler", "getInstallationMetadata() raised %s: %s, not a FarmAPI.FarmPluginException"
                            % (type(e).__name__, e))
        if not isinstance(meta, FarmAPI.BaseFarmPlugin.InstallationMetadata):
            raise FarmError("scheduler", "getInstallationMetadata() returned %r (%s), not a "
                            "BaseFarmPlugin.InstallationMetadata" % (meta, type(meta).__name__))
        if not isinstance(meta.katanaRoot, str) or not meta.katanaRoot:
            raise FarmError("scheduler", "getInstallationMetadata() gave katanaRoot %r, not a path" % (meta.katanaRoot,))
        dsos = meta.renderPluginDsoPaths or {}
        if not isinstance(dsos, dict):
            raise FarmError("scheduler", "getInstallationMetadata() gave renderPluginDsoPaths %r, not a dict" % (dsos,))
        return {"katana_root": meta.katanaRoot,
                "render_plugin_dso_paths": {str(k): str(v) for k, v in dsos.items()},
                "renderboot_command": meta.renderbootCommand}

    def render_environment(self, params):
        if not overrides(self.cls, "getRenderEnvironment"):
            return {}
        env = self.call("getRenderEnvironment", str(params["render_context"]))
        if env is None:
            return {}
        if not isinstance(env, dict):
            raise FarmError("scheduler", "getRenderEnvironment returned %r, not a dict" % (env,))
        return {str(k): str(v) for k, v in env.items()}

    def render(self, params):
        """FarmAPI has no render-to-files: what the plug-in would be given, the JobRequest,
        as JSON (deterministic, and the way to see what submitJob receives)."""
        doc = self.job_request_json(self.job_request(params["request"], params["tasks"]))
        return {"files": [{"name": "jobRequest.json", "contents": json.dumps(doc, sort_keys=True, indent=2) + "\n",
                           "executable": False}]}

    def submit(self, params):
        request = params["request"]
        job_request = self.job_request(request, params["tasks"])
        info = JobInfo(request["name"], request["render_context"], request.get("tags") or [], now_ms())
        job_id = self.call("submitJob", job_request)
        if job_id is None or str(job_id) == "":
            raise FarmError("scheduler", "submitJob returned %r, not a job id" % (job_id,))
        job_id = str(job_id)
        self.jobs[job_id] = info
        return job_id

    def job(self, params):
        job_id = str(params["id"])
        state = self.state_of(job_id)
        return self.record(job_id, state, self.find_listed(job_id))

    def list_jobs(self, params):
        self.require("list_jobs", "getJobs")
        f = params.get("filter") or {}
        out, seen = [], set()
        for job in self.listed():
            job_id = str(job.jobId)
            if job_id in seen:
                continue
            seen.add(job_id)
            rec = self.record(job_id, self.checked_state(job.state, "getJobs([]) for job %r" % job_id), job)
            if f.get("states") and rec["state"] not in f["states"]:
                continue
            if f.get("name") is not None and rec["name"] != f["name"]:
                continue
            if f.get("tag") is not None and f["tag"] not in rec.get("tags", []):
                continue
            since = rec.get("submit_time") or rec.get("start_time")
            if f.get("since") is not None and since is not None and since < f["since"]:
                continue
            out.append(rec)
        return out

    def render_log_filename(self, params):
        self.require("render_log", "getRenderLogFilename")
        job_id = str(params["id"])
        path = self.call("getRenderLogFilename", job_id)
        self.confirm_known("getRenderLogFilename", job_id)
        if path is not None and (not isinstance(path, str) or not path):
            raise FarmError("scheduler", "getRenderLogFilename(%r) returned %r, not a path or None" % (job_id, path))
        return path

    def read_log(self, params):
        """Derived: the render log file, read from `offset`."""
        self.require("read_log", "getRenderLogFilename")
        job_id = str(params["id"])
        offset = max(0, int(params.get("offset") or 0))
        state = self.state_of(job_id)  # before reading: a terminal state means the log is whole
        path = self.render_log_filename({"id": job_id})
        terminal = state in TERMINAL
        if path is None:
            return {"data": "", "next_offset": offset, "complete": terminal}
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                offset = min(offset, size)
                f.seek(offset)
                data = f.read(READ_LOG_LIMIT)
        except FileNotFoundError:
            return {"data": "", "next_offset": offset, "complete": False}
        except OSError as e:
            raise FarmError("io", "cannot read the render log %s of job %s: %s" % (path, job_id, e))
        complete = terminal and offset + len(data) >= size
        keep = len(data) if complete else utf8_complete_length(data)
        return {"data": data[:keep].decode("utf-8", "replace"), "next_offset": offset + keep, "complete": complete}

    def start(self, params):
        self.require("start", "startJob")
        job_id = str(params["id"])
        try:
            before = self.state_of(job_id)
        except FarmError as e:
            if e.kind != "job_not_found":
                raise
            before = None
        self.call("startJob", job_id)
        if before is None:
            raise FarmError("scheduler", "startJob(%r) returned normally for a job getJobState says does not exist: "
                            "the plug-in did not raise JobNotFoundException" % job_id)
        if before in TERMINAL:
            info = self.jobs.get(job_id)
            if info is None:
                info = self.jobs[job_id] = JobInfo(job_id, None, [], None)
            info.attempt += 1
        return job_id

    def stop(self, params):
        self.require("stop", "stopJob")
        job_id = str(params["id"])
        self.call("stopJob", job_id)
        self.confirm_known("stopJob", job_id)
        return None


METHODS = ("hello", "create_temp_directory", "copy_render_files", "installation_metadata", "render_environment",
           "render", "submit", "job", "list_jobs", "render_log_filename", "read_log", "start", "stop")


class Unloaded(object):
    """Answers every call with the error that kept the plug-in from loading."""

    def __init__(self, error):
        self.error = error


def handle(host, call):
    method = call.get("method")
    if isinstance(host, Unloaded):
        raise host.error
    if method not in METHODS:
        raise FarmError("unsupported", "unknown method %r" % (method,))
    return getattr(host, method)(call.get("params") or {})


def serve(host, lines, out):
    for line in lines:
        if not line.strip():
            continue
        try:
            call = json.loads(line)
        except ValueError:
            sys.stderr.write("farm_katana_host: not a JSON call: %r\n" % line[:200])
            continue
        try:
            reply = {"id": call.get("id"), "result": handle(host, call)}
        except FarmError as e:
            reply = {"id": call.get("id"), "error": e.to_wire()}
        except Exception as e:  # a bug here or an odd plug-in: report, never crash
            traceback.print_exc(file=sys.stderr)
            reply = {"id": call.get("id"), "error": {"kind": "scheduler", "message": "%s: %s" % (type(e).__name__, e)}}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def protocol_streams():
    """The protocol's stdin and stdout, kept apart from the plug-in: its prints (and its
    children's output) go to stderr, and its children read /dev/null, never our calls."""
    lines = os.fdopen(os.dup(0), "r", encoding="utf-8", newline="\n")
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", newline="\n")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull, "r")
    sys.stdout = sys.stderr
    return lines, out


def build_host(plugins, name=None):
    folder = plugins_folder(plugins)
    found, problems = farm_plugins(folder)
    cls = choose(found, problems, folder, name)
    registered = next(n for n, c, _ in found if c is cls)
    for method in ("submitJob", "getJobState"):
        if not overrides(cls, method):
            raise FarmError("config", "the farm plug-in %r does not implement %s, which every farm plug-in must"
                            % (registered, method))
    try:
        plugin = cls()
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        raise FarmError("config", "the farm plug-in %r could not be constructed: %s: %s" % (registered, type(e).__name__, e))
    return Host(plugin, registered)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", required=True, help="a Katana Plugins folder (or the resource folder holding it)")
    parser.add_argument("--name", help="the plug-in's registered name (default: the only farm plug-in)")
    parser.add_argument("--list", action="store_true", help="print the registered farm plug-ins as JSON and exit")
    args = parser.parse_args(argv)
    if args.list:
        found, problems = farm_plugins(plugins_folder(args.plugins))
        caps = [{"name": n, "class": c.__name__, "module": p, "capabilities": capabilities_of(c)} for n, c, p in found]
        print(json.dumps({"plugins": caps, "problems": problems}, indent=2))
        return 0
    lines, out = protocol_streams()
    try:
        host = build_host(args.plugins, args.name)
    except FarmError as e:
        sys.stderr.write("farm_katana_host: %s\n" % e)
        host = Unloaded(e)
    serve(host, lines, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
