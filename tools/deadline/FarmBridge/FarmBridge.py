"""FarmBridge: the Deadline 10 plug-in that runs farm-bridge job requests.

Copy this folder into the repository's ``custom/plugins/`` folder. Jobs submitted by the
``deadline-web-service`` profile (or with the ``job_info.job`` / ``plugin_info.job`` pair
that ``farm render`` writes) name ``Plugin=FarmBridge``.

Each Deadline task is one chunk of the request: Deadline chunks ``Frames`` by ``ChunkSize``
in frame order, exactly as the request does, so Deadline's task N is the request's task N.
The plug-in writes the request to the Worker's job temp folder and runs

    farm run-task <request.json> --task N --frames START-END

which plans and executes the chunk with the same code the local queue's agents run, exits
with the failing command's status and ends with one ``farm:`` line naming the failing step.
The task fails with that line as its error. ``--frames`` makes ``farm`` refuse a task whose
frames differ from the request's chunk (a job whose chunk size was edited in the Monitor),
instead of rendering the wrong frames.

Where the request comes from (PluginInfo entries):

- ``Request``: the request as one line of JSON (what the Web Service profile and
  ``plugin_info.job`` carry);
- otherwise ``RequestFile`` (default ``request.json``): an auxiliary file submitted with the
  job (``deadlinecommand -SubmitJob job_info.job plugin_info.job request.json``).

Plug-in settings (``FarmBridge.param``): ``FarmExecutable``, the paths where ``farm`` may
live on the Workers (first existing wins), and ``ProgressPattern``.
"""

import json
import os
import re

from Deadline.Plugins import DeadlinePlugin, PluginType
from Deadline.Scripting import FileUtils

# The final line `farm run-task` always prints.
FARM_LINE = r"^farm: task \d+ .*$"


def GetDeadlinePlugin():
    """Called by Deadline to get the plug-in instance."""
    return FarmBridgePlugin()


def CleanupDeadlinePlugin(deadlinePlugin):
    """Called by Deadline when the plug-in is no longer used."""
    deadlinePlugin.Cleanup()


def request_text(plugin_info, aux_files):
    """The request (JSON text) from PluginInfo, or the named auxiliary file.

    ``plugin_info`` is a function (entry name, default) -> text; ``aux_files`` the job's
    auxiliary file paths. Raises ValueError with a message for people.
    """
    inline = plugin_info("Request", "").strip()
    if inline:
        return inline
    wanted = plugin_info("RequestFile", "request.json").strip() or "request.json"
    for path in aux_files:
        if os.path.basename(path) == wanted:
            with open(path, "r", encoding="utf-8") as handle:
                return handle.read()
    raise ValueError(
        "this job carries no farm request: set the PluginInfo entry Request (one line of "
        "JSON) or submit the request as the auxiliary file %s" % wanted
    )


def quote_argument(text):
    """One argument for Deadline's argument string (split like a Windows command line)."""
    if text and not re.search(r'[\s"]', text):
        return text
    # Backslashes are literal unless they precede a quote.
    escaped = re.sub(r'(\\*)"', r'\1\1\\"', text)
    escaped = re.sub(r"(\\+)$", r"\1\1", escaped)
    return '"%s"' % escaped


class FarmBridgePlugin(DeadlinePlugin):
    """Runs one Deadline task through ``farm run-task``."""

    def __init__(self):
        super().__init__()
        self.InitializeProcessCallback += self.InitializeProcess
        self.RenderExecutableCallback += self.RenderExecutable
        self.RenderArgumentCallback += self.RenderArgument
        self.CheckExitCodeCallback += self.CheckExitCode
        self.PostRenderTasksCallback += self.PostRenderTasks
        self.LastFarmLine = ""
        self.RequestPath = None

    def Cleanup(self):
        for handler in self.StdoutHandlers:
            del handler.HandleCallback
        del self.InitializeProcessCallback
        del self.RenderExecutableCallback
        del self.RenderArgumentCallback
        del self.CheckExitCodeCallback
        del self.PostRenderTasksCallback

    def InitializeProcess(self):
        self.PluginType = PluginType.Simple
        # A chunk of frames is one task; never split it into single frames.
        self.SingleFramesOnly = False
        self.StdoutHandling = True
        # `farm run-task` starts each step in its own process group: stopping the task must
        # reach them, so Deadline kills the whole process tree.
        self.UseProcessTree = True
        self.AddStdoutHandlerCallback(FARM_LINE).HandleCallback += self.HandleFarmLine
        pattern = self.GetConfigEntryWithDefault("ProgressPattern", r"ALF_PROGRESS\s+(\d+)%")
        if pattern.strip():
            self.AddStdoutHandlerCallback(pattern).HandleCallback += self.HandleProgress

    def RenderExecutable(self):
        paths = self.GetConfigEntry("FarmExecutable")
        executable = FileUtils.SearchFileList(paths)
        if not executable:
            self.FailRender(
                "the farm executable was not found on this Worker (looked in: %s); install "
                "farm or set FarmExecutable in Configure Plugins > FarmBridge"
                % "; ".join(p for p in re.split(r"[;\r\n]+", paths) if p)
            )
        return executable

    def RenderArgument(self):
        try:
            text = request_text(
                self.GetPluginInfoEntryWithDefault, self.GetAuxiliaryFilenames()
            )
            json.loads(text)
        except (ValueError, OSError) as err:
            self.FailRender("FarmBridge: %s" % err)
        folder = self.CreateTempDirectory("farmbridge")
        self.RequestPath = os.path.join(folder, "request.json")
        with open(self.RequestPath, "w", encoding="utf-8") as handle:
            handle.write(text)
        task = int(self.GetCurrentTaskId())
        self.SetProgress(0)
        self.SetStatusMessage("task %d: frames %d-%d" % (task, self.GetStartFrame(), self.GetEndFrame()))
        return " ".join(
            quote_argument(a)
            for a in [
                "run-task",
                self.RequestPath,
                "--task",
                str(task),
                "--frames",
                "%d-%d" % (self.GetStartFrame(), self.GetEndFrame()),
            ]
        )

    def HandleFarmLine(self):
        self.LastFarmLine = self.GetRegexMatch(0)
        self.SetStatusMessage(self.LastFarmLine)

    def HandleProgress(self):
        try:
            self.SetProgress(min(100.0, max(0.0, float(self.GetRegexMatch(1)))))
        except ValueError:
            pass

    def CheckExitCode(self, exitCode):
        if exitCode == 0:
            self.SetProgress(100)
            return
        message = self.LastFarmLine or (
            "farm run-task exited with status %d before running the task (see the log above)"
            % exitCode
        )
        self.FailRender(message)

    def PostRenderTasks(self):
        if self.RequestPath and os.path.exists(self.RequestPath):
            os.remove(self.RequestPath)
