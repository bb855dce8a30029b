"""Subprocess Farm: a small Katana farm plug-in that runs render jobs on this machine.

Written the way a studio writes a farm plug-in for its own queue: a FarmAPI.BaseFarmPlugin
subclass registered through PluginRegistry. Its "queue management server" is this machine:

- a job table, `jobs.json`, in a state folder (SUBPROCESS_FARM_DIR, or
  `<tempdir>/subprocess-farm-<user>`), read and written under a lock by every process;
- one runner process per job attempt (this file run as a script), in its own process group,
  which runs the job's chunks one after another and each chunk's commands in order — each
  command's argv, with the job's environment plus the command's own variables, in the job's
  working directory — and writes the outcome to the table and the render log;
- stopJob kills the runner's process group, so the renderer dies with it.

A job outlives the Katana session (or farm host) that submitted it, as on a real farm.

Environment:
  SUBPROCESS_FARM_DIR   the state folder (job table, render logs, staging)
  KATANA_ROOT           the Katana installation render nodes use (this machine's)

Standard library only; Python 3.9+.
"""

import fcntl
import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

try:
    from Katana import FarmAPI
except ImportError:  # run as a job runner, outside Katana
    FarmAPI = None

# Native states -> Katana's.
NATIVE_TO_KATANA = {
    "queued": "Waiting",
    "running": "Running",
    "done": "Completed",
    "cancelled": "Cancelled",
    "failed": "Failed",
}
FINISHED = ("done", "cancelled", "failed")


def now_ms():
    return int(time.time() * 1000)


def state_dir():
    default = os.path.join(tempfile.gettempdir(), "subprocess-farm-%s" % getpass.getuser())
    path = os.environ.get("SUBPROCESS_FARM_DIR") or default
    os.makedirs(os.path.join(path, "logs"), exist_ok=True)
    return path


class JobTable(object):
    """jobs.json under an exclusive lock: {"next_id": n, "jobs": {id: record}}."""

    def __init__(self, folder):
        self.path = os.path.join(folder, "jobs.json")
        self.lock_path = os.path.join(folder, "jobs.lock")

    @contextmanager
    def edit(self):
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                table = self._read()
                yield table
                tmp = self.path + ".%d.tmp" % os.getpid()
                with open(tmp, "w") as f:
                    json.dump(table, f)
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read(self):
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            try:
                return self._read()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"next_id": 1, "jobs": {}}


# -- the runner: one process per job attempt ---------------------------------------------------


def run_job(folder, job_id, attempt):
    """Runs one attempt of a job; the plug-in started this process in a new session."""
    table = JobTable(folder)
    with table.edit() as t:
        job = t["jobs"][job_id]
        if job["attempt"] != attempt or job["state"] in FINISHED:
            return 0
        job["state"], job["startTime"] = "running", now_ms()
    failure = None
    with open(job["log"], "ab", buffering=0) as log:
        for chunk in job["chunks"]:
            outcome = run_chunk(job, chunk, log)
            failure = failure or outcome
        log.write(("subprocess-farm: %s\n" % (failure or "job completed")).encode())
    with table.edit() as t:
        current = t["jobs"][job_id]
        if current["attempt"] == attempt and current["state"] not in FINISHED:
            current["state"] = "failed" if failure else "done"
            current["endTime"] = now_ms()
    return 0


def run_chunk(job, chunk, log):
    """Runs a chunk's commands in order; returns None, or why the chunk failed."""
    cwd = job.get("workingDirectory")
    for i, command in enumerate(chunk["commands"]):
        env = dict(os.environ)
        env.update(job["environment"])
        env.update(command.get("env") or {})
        try:
            proc = subprocess.Popen(command["argv"], cwd=cwd or None, env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log)
        except OSError as e:
            return "chunk %d, command %d: cannot run %s: %s (exit code 127)" % (chunk["index"], i, command["argv"][0], e)
        code = proc.wait()
        if code != 0:
            what = "killed by signal %d" % -code if code < 0 else "exit code %d" % code
            return "chunk %d, command %d: %s" % (chunk["index"], i, what)
    return None


# -- the plug-in ------------------------------------------------------------------------------

if FarmAPI is not None:

    class SubprocessFarmPlugin(FarmAPI.BaseFarmPlugin):
        """Runs Katana's render jobs as processes on this machine."""

        def __init__(self):
            FarmAPI.BaseFarmPlugin.__init__(self)
            self.folder = state_dir()
            self.table = JobTable(self.folder)
            self.runners = {}  # pid -> Popen, for the runners this session started

        # -- helpers -------------------------------------------------------------------

        def _record(self, jobId, table=None):
            jobs = (table or self.table.read())["jobs"]
            if str(jobId) not in jobs:
                raise FarmAPI.JobNotFoundException(jobId, "no such job in %s" % self.table.path)
            return jobs[str(jobId)]

        def _alive(self, pid):
            runner = self.runners.get(pid)
            if runner is not None:
                return runner.poll() is None
            try:
                os.kill(pid, 0)
                return True
            except ProcessLookupError:
                return False
            except PermissionError:
                return True

        def _reap(self):
            for pid, runner in list(self.runners.items()):
                if runner.poll() is not None:
                    del self.runners[pid]

        def _notice_lost(self, jobId):
            """A job whose runner died without saying how it ended is lost: Failed."""
            record = self._record(jobId)
            if record["state"] in FINISHED or record.get("pid") is None or self._alive(record["pid"]):
                return
            with self.table.edit() as t:
                record = t["jobs"][str(jobId)]
                if record["state"] not in FINISHED and not self._alive(record["pid"]):
                    record["state"], record["endTime"] = "failed", now_ms()
                    with open(record["log"], "ab") as log:
                        log.write(b"subprocess-farm: job lost (its runner process is gone)\n")

        def _launch(self, jobId, attempt):
            runner = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--run", str(jobId), "--attempt", str(attempt),
                 "--state-dir", self.folder],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True)
            self.runners[runner.pid] = runner
            with self.table.edit() as t:
                t["jobs"][str(jobId)]["pid"] = runner.pid

        def _kill(self, pid):
            """Ends the runner's process group: the runner and every command it started."""
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    return
                deadline = time.time() + 2
                while time.time() < deadline and self._alive(pid):
                    time.sleep(0.05)
                if not self._alive(pid):
                    return

        def _state(self, native):
            return NATIVE_TO_KATANA[native]

        def _job(self, jobId, record):
            return FarmAPI.Job(jobId, record["name"], record.get("startTime"), record.get("endTime"),
                               self._state(record["state"]), record["log"])

        # -- Job submission ---------------------------------------------------------------

        def createTempDirectory(self, renderContextName):
            path = os.path.join(self.folder, "staging", str(renderContextName))
            os.makedirs(path, exist_ok=True)
            return path

        def copyRenderFiles(self, filenames, renderContextName):
            for name in filenames:
                if not os.path.isfile(name):
                    raise FarmAPI.FarmPluginException("cannot copy %s: no such file" % name)
            dest = os.path.join(self.createTempDirectory(renderContextName), "files")
            copies, taken = {}, {}
            for name in filenames:
                base = os.path.basename(name)
                taken[base] = taken.get(base, 0) + 1
                folder = dest if taken[base] == 1 else os.path.join(dest, str(taken[base] - 1))
                os.makedirs(folder, exist_ok=True)
                target = os.path.join(folder, base)
                shutil.copyfile(name, target + ".partial")
                os.replace(target + ".partial", target)
                copies[name] = target
            return copies

        def getInstallationMetadata(self):
            root = os.environ.get("KATANA_ROOT")
            if not root:
                raise FarmAPI.FarmPluginException("KATANA_ROOT is not set: the render nodes' Katana is unknown")
            return FarmAPI.BaseFarmPlugin.InstallationMetadata(root, {})

        def getRenderEnvironment(self, renderContextName):
            return {"SUBPROCESS_FARM_CONTEXT": str(renderContextName)}

        def submitJob(self, jobRequest):
            tasks = getattr(jobRequest, "tasks", None)
            if tasks:
                chunks = [{"index": t.index, "frames": t.frames,
                           "commands": [{"argv": list(c.argv), "env": dict(c.env)} for c in t.commands]}
                          for t in tasks]
            else:  # Katana's own JobRequest: its commands, once, for the whole frame range
                chunks = [{"index": 0, "frames": None,
                           "commands": [{"argv": list(c) if isinstance(c, (list, tuple)) else ["/bin/sh", "-c", c]}
                                        for c in jobRequest.commands]}]
            if not any(c["commands"] for c in chunks):
                raise FarmAPI.FarmPluginException("the job request has no commands")
            with self.table.edit() as t:
                jobId = str(t["next_id"])
                t["next_id"] += 1
                log = os.path.join(self.folder, "logs", "%s.1.log" % jobId)
                open(log, "ab").close()
                t["jobs"][jobId] = {
                    "name": jobRequest.jobName or "katana %s" % str(jobRequest.renderContextName)[:8],
                    "renderContext": str(jobRequest.renderContextName),
                    "environment": {str(k): str(v) for k, v in (jobRequest.environment or {}).items()},
                    "workingDirectory": getattr(jobRequest, "workingDirectory", None),
                    "chunks": chunks,
                    "state": "queued", "attempt": 1, "pid": None,
                    "submitTime": now_ms(), "startTime": None, "endTime": None, "log": log,
                }
            self._launch(jobId, 1)
            return jobId

        # -- Information retrieval ----------------------------------------------------------

        def getJobState(self, jobId):
            self._reap()
            self._notice_lost(jobId)
            return self._state(self._record(jobId)["state"])

        def getJobs(self, filters):
            self._reap()
            out = []
            for jobId, record in sorted(self.table.read()["jobs"].items(), key=lambda kv: int(kv[0])):
                if record["state"] not in FINISHED and record.get("pid") and not self._alive(record["pid"]):
                    self._notice_lost(jobId)
                    record = self._record(jobId)
                job = self._job(jobId, record)
                wanted = [f for f in (filters or []) if f in FarmAPI.Job.State.kAllStates]
                if wanted and job.state not in wanted:
                    continue
                out.append(job)
            return out

        def getRenderLogFilename(self, jobId):
            return self._record(jobId)["log"]

        # -- Job control --------------------------------------------------------------------

        def startJob(self, jobId):
            with self.table.edit() as t:
                record = self._record(jobId, t)
                if record["state"] not in FINISHED:
                    return
                record["attempt"] += 1
                record["state"], record["startTime"], record["endTime"], record["pid"] = "queued", None, None, None
                record["log"] = os.path.join(self.folder, "logs", "%s.%d.log" % (jobId, record["attempt"]))
                open(record["log"], "ab").close()
                attempt = record["attempt"]
            self._launch(jobId, attempt)

        def stopJob(self, jobId):
            with self.table.edit() as t:
                record = self._record(jobId, t)
                if record["state"] in FINISHED:
                    return
                record["state"], record["endTime"] = "cancelled", now_ms()
                pid = record["pid"]
            if pid:
                self._kill(pid)
            with open(record["log"], "ab") as log:
                log.write(b"subprocess-farm: stopped\n")

    PluginRegistry = [("FarmPlugin", 2.0, "Subprocess Farm", SubprocessFarmPlugin)]


if __name__ == "__main__" and "--run" in sys.argv:
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    sys.exit(run_job(args["--state-dir"], args["--run"], int(args["--attempt"])))
