"""Katana render-farm plug-ins for every farm configured for the `farm` command line.

Add the folder that holds this `Plugins/` folder to KATANA_RESOURCES. At start-up the module
asks `farm farms --output json` which farms exist and registers one FarmAPI.BaseFarmPlugin
per farm ("Farm: hpc", "Farm: local", ...), so Slurm, HTCondor, HTTP schedulers and the local
queue all appear in Katana's render-farm menus. Every method runs the `farm` command line
with `--output json`; nothing here knows any scheduler.

Environment:
  FARM_BIN          the farm executable (default: `farm` on PATH)
  FARM_CONFIG       the farms file (the farm command line's own default otherwise)
  FARM_KATANA_FARMS comma-separated farm names to register (default: every farm)

See docs/katana.md for installation, configuration and troubleshooting.
"""

import json
import os
import shlex
import subprocess
import uuid

from Katana import FarmAPI

# One id per Katana session, so "the jobs of this session" can be listed.
SESSION_TAG = "katana-session:" + uuid.uuid4().hex
KATANA_TAG = "katana"

# Katana's render types -> ours. Katana spells them several ways across versions.
RENDER_TYPES = {
    "preview": "preview", "previewrender": "preview",
    "live": "live", "liverender": "live",
    "disk": "disk", "diskrender": "disk", "batch": "disk",
}


class FarmCommandError(Exception):
    """The farm command line failed; `kind` is the FarmError kind it reported."""

    def __init__(self, kind, message, job_id=None):
        Exception.__init__(self, message)
        self.kind = kind
        self.job_id = job_id


def farm_binary():
    return os.environ.get("FARM_BIN", "farm")


def run_farm(args, farm=None, stdin=None, timeout=120):
    """Runs `farm --output json [--farm NAME] ARGS` and returns the parsed JSON."""
    argv = [farm_binary(), "--output", "json"]
    if farm:
        argv += ["--farm", farm]
    argv += list(args)
    try:
        proc = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, universal_newlines=True)
    except OSError as e:
        raise FarmCommandError("config", "cannot run %s: %s (set FARM_BIN)" % (argv[0], e))
    except subprocess.TimeoutExpired:
        raise FarmCommandError("unavailable", "%s did not answer within %ss" % (" ".join(argv[:5]), timeout))
    text = proc.stdout.strip()
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        raise FarmCommandError("scheduler", "unreadable output from farm: %r %s" % (text[:200], proc.stderr.strip()))
    if isinstance(doc, dict) and "error" in doc and proc.returncode != 0:
        err = doc["error"]
        raise FarmCommandError(err.get("kind", "scheduler"), err.get("message", "farm failed"), err.get("id"))
    # `status` and the other per-id commands report what exists in "jobs" and the rest in
    # "errors" (docs/cli-json.md); the plug-in asks for one id at a time.
    if isinstance(doc, dict) and doc.get("errors") and not doc.get("jobs") and proc.returncode != 0:
        err = doc["errors"][0]
        raise FarmCommandError(err.get("kind", "scheduler"), err.get("message", "farm failed"), err.get("id"))
    if proc.returncode != 0:
        raise FarmCommandError("scheduler", "farm exited %d: %s" % (proc.returncode, proc.stderr.strip()))
    return doc


def _get(obj, names, default=None):
    """Reads the first of `names` that exists on a Katana object: an attribute, a getter
    method (`getX`), or a key. Katana's JobRequest attributes are not documented, so every
    read is defensive and the mapping is written down in docs/katana.md."""
    for name in names:
        for candidate in (name, "get" + name[0].upper() + name[1:]):
            value = getattr(obj, candidate, None)
            if callable(value):
                try:
                    value = value()
                except TypeError:
                    continue
            if value is not None:
                return value
        if isinstance(obj, dict) and obj.get(name) is not None:
            return obj[name]
    return default


def literal(arg):
    """A Katana argument as a literal argv element (braces are not placeholders)."""
    return str(arg).replace("{", "{{")


def to_argv(command):
    """Katana gives commands as argv lists or as command-line strings; a string is split
    with POSIX rules (never run through a shell)."""
    if isinstance(command, (list, tuple)):
        return [literal(a) for a in command]
    return [literal(a) for a in shlex.split(str(command))]


def frames_of(job_request):
    frames = _get(job_request, ["frames", "frameList"])
    if frames:
        if isinstance(frames, str):
            return frames
        return ",".join(str(int(f)) for f in frames)
    frame_range = _get(job_request, ["frameRange"])
    if frame_range and len(frame_range) >= 2:
        return "%d-%d" % (int(frame_range[0]), int(frame_range[1]))
    start = _get(job_request, ["startFrame", "frameStart"])
    end = _get(job_request, ["endFrame", "frameEnd"])
    if start is not None and end is not None:
        return "%d-%d" % (int(start), int(end))
    return None


def count_frames(frames):
    total = 0
    for piece in frames.split(","):
        if "-" in piece:
            a, b = piece.split("-", 1)
            step = 1
            if "x" in b:
                b, step = b.split("x", 1)
            total += (int(b) - int(a)) // int(step) + 1
        else:
            total += 1
    return total


def to_request(job_request, extra_environment=None):
    """Katana's JobRequest -> the farm's request (docs/job-request.md)."""
    context = str(_get(job_request, ["renderContextName", "renderContext"], uuid.uuid4()))
    commands = _get(job_request, ["commands", "commandList"], [])
    if isinstance(commands, (str, bytes)):
        commands = [commands]
    argvs = [to_argv(c) for c in commands]
    name = _get(job_request, ["jobName", "name", "renderNodeName", "nodeName"]) or ("katana " + context[:8])
    render_type = str(_get(job_request, ["renderType", "renderMethodType", "type"], "disk")).replace("_", "").lower()
    environment = {}
    environment.update(extra_environment or {})
    environment.update(_get(job_request, ["environment", "environmentVariables", "env"], {}) or {})
    request = {
        "name": " ".join(str(name).split()),
        "render_context": context,
        "render_type": RENDER_TYPES.get(render_type, "disk"),
        "commands": argvs,
        "environment": {str(k): str(v) for k, v in environment.items()},
        "tags": [KATANA_TAG, SESSION_TAG],
    }
    frames = frames_of(job_request)
    if frames:
        # Katana's commands do not name a frame placeholder: they render the whole range in
        # one go, so run them once for one task holding every frame.
        request["frames"] = frames
        request["repeat"] = "per_chunk"
        request["chunk_size"] = max(1, count_frames(frames))
    working_directory = _get(job_request, ["workingDirectory", "cwd"])
    if working_directory:
        request["working_directory"] = str(working_directory)
    return request


class FarmBridgePlugin(FarmAPI.BaseFarmPlugin):
    """A Katana farm plug-in for one farm of the `farm` command line."""

    farm_name = None  # set on the per-farm subclasses

    def __init__(self):
        FarmAPI.BaseFarmPlugin.__init__(self)
        # start() may give a finished job a new id; Katana keeps using the old one.
        self._aliases = {}

    # -- helpers -----------------------------------------------------------------------

    def _farm(self, args, stdin=None):
        try:
            return run_farm(args, farm=self.farm_name, stdin=stdin)
        except FarmCommandError as e:
            if e.kind == "job_not_found":
                raise FarmAPI.JobNotFoundException(e.job_id or (args[-1] if args else ""), str(e))
            raise FarmAPI.FarmPluginException("%s (farm %s)" % (e, self.farm_name))

    def _id(self, job_id):
        job_id = str(job_id)
        while job_id in self._aliases:
            job_id = self._aliases[job_id]
        return job_id

    @staticmethod
    def _to_job(record):
        return FarmAPI.Job(record["id"], record.get("name", ""), record.get("start_time"), record.get("end_time"),
                           record["state"], record.get("render_log_filename"))

    # -- Job submission ------------------------------------------------------------------

    def createTempDirectory(self, renderContextName):
        return self._farm(["temp-dir", str(renderContextName)])["path"]

    def copyRenderFiles(self, filenames, renderContextName):
        return self._farm(["copy-files", str(renderContextName)] + [str(f) for f in filenames])

    def getInstallationMetadata(self):
        try:
            meta = run_farm(["installation"], farm=self.farm_name)
        except FarmCommandError as e:
            root = os.environ.get("KATANA_ROOT")
            if e.kind != "config" or not root:
                raise FarmAPI.FarmPluginException("%s (farm %s)" % (e, self.farm_name))
            # The farm does not say where Katana lives on its nodes: assume they mirror
            # this workstation, as Katana Queue does.
            meta = {"katana_root": root, "render_plugin_dso_paths": {}, "renderboot_command": None}
        return FarmAPI.BaseFarmPlugin.InstallationMetadata(
            meta["katana_root"], meta.get("render_plugin_dso_paths") or {}, meta.get("renderboot_command"))

    def getRenderEnvironment(self, renderContextName):
        return self._farm(["environment", str(renderContextName)])

    def submitJob(self, jobRequest):
        context = str(_get(jobRequest, ["renderContextName", "renderContext"], ""))
        # The farm's render environment goes under the request's own variables, whether or
        # not Katana already merged it (it is the same data).
        extra = self.getRenderEnvironment(context) if context else {}
        request = to_request(jobRequest, extra_environment=extra)
        if not request["commands"]:
            raise FarmAPI.FarmPluginException("the job request has no commands")
        doc = self._farm(["submit", "-"], stdin=json.dumps(request))
        return str(doc["jobs"][0]["id"])

    # -- Information retrieval -----------------------------------------------------------

    def getJobState(self, jobId):
        return self._farm(["status", self._id(jobId)])["jobs"][0]["state"]

    def getJobs(self, filters=None):
        """Jobs of this Katana session; `filters` may name states (e.g. ["Running"])."""
        args = ["list", "--tag", SESSION_TAG]
        for f in filters or []:
            if f in FarmAPI.Job.State.kAllStates:
                args += ["--state", f]
        return [self._to_job(r) for r in self._farm(args)["jobs"]]

    def getRenderLogFilename(self, jobId):
        return self._farm(["log", "--path", self._id(jobId)]).get("render_log_filename")

    # -- Job control ---------------------------------------------------------------------

    def startJob(self, jobId):
        old = self._id(jobId)
        started = self._farm(["start", old])["results"][0]
        if str(started["now"]) != old:
            self._aliases[old] = str(started["now"])

    def stopJob(self, jobId):
        self._farm(["stop", self._id(jobId)])


def configured_farms():
    """(name, description) of every farm to register, or [] when `farm` cannot be asked."""
    wanted = [n.strip() for n in os.environ.get("FARM_KATANA_FARMS", "").split(",") if n.strip()]
    try:
        farms = run_farm(["farms"], timeout=30)
    except FarmCommandError:
        return [(n, n) for n in wanted]
    out = []
    for farm in farms:
        if wanted and farm["name"] not in wanted:
            continue
        if farm.get("problem"):
            continue
        out.append((farm["name"], farm.get("description") or farm["adapter"]))
    return out


def plugin_class(name, description):
    return type("FarmBridgePlugin_" + "".join(c if c.isalnum() else "_" for c in name), (FarmBridgePlugin,),
                {"farm_name": name, "__doc__": "Katana farm plug-in for farm %r: %s" % (name, description)})


PluginRegistry = [("FarmPlugin", 2.0, "Farm: %s" % name, plugin_class(name, description))
                  for name, description in configured_farms()]
