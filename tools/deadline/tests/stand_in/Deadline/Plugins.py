"""Stand-in for Deadline.Plugins: DeadlinePlugin, PluginType, and a Worker that drives a
Simple plug-in through one task the way Deadline's Worker does."""

import re
import subprocess


class PluginType:
    Simple = 1
    Advanced = 2


class RenderFailed(Exception):
    """What DeadlinePlugin.FailRender raises (Deadline fails the task with the message)."""


class Event:
    """A .NET-style event: `+=` adds a handler, calling it calls them all."""

    def __init__(self):
        self.handlers = []

    def __iadd__(self, handler):
        self.handlers.append(handler)
        return self

    def __call__(self, *args):
        result = None
        for handler in self.handlers:
            result = handler(*args)
        return result

    def __bool__(self):
        return bool(self.handlers)


class StdoutHandler:
    def __init__(self, regex):
        self.Regex = re.compile(regex)
        self.HandleCallback = Event()


class DeadlinePlugin:
    def __init__(self):
        self.InitializeProcessCallback = Event()
        self.StartJobCallback = Event()
        self.PreRenderTasksCallback = Event()
        self.RenderExecutableCallback = Event()
        self.RenderArgumentCallback = Event()
        self.CheckExitCodeCallback = Event()
        self.PostRenderTasksCallback = Event()
        self.EndJobCallback = Event()
        self.StdoutHandlers = []
        self.PluginType = PluginType.Simple
        self.SingleFramesOnly = False
        self.StdoutHandling = False
        self.UseProcessTree = False
        # Set by the Worker.
        self._config = {}
        self._plugin_info = {}
        self._aux = []
        self._task = (0, 0, 0)
        self._temp = None
        self._match = None
        self.progress = []
        self.status = []
        self.log = []

    # Configuration (the .param file) and job settings (PluginInfo).
    def GetConfigEntry(self, key):
        if key not in self._config:
            raise KeyError("plug-in config entry %s is not set" % key)
        return self._config[key]

    def GetConfigEntryWithDefault(self, key, default):
        return self._config.get(key, default)

    def GetPluginInfoEntry(self, key):
        if key not in self._plugin_info:
            raise KeyError("PluginInfo entry %s is not set" % key)
        return self._plugin_info[key]

    def GetPluginInfoEntryWithDefault(self, key, default):
        return self._plugin_info.get(key, default)

    def GetAuxiliaryFilenames(self):
        return list(self._aux)

    # The task.
    def GetCurrentTaskId(self):
        return str(self._task[0])

    def GetStartFrame(self):
        return self._task[1]

    def GetEndFrame(self):
        return self._task[2]

    def CreateTempDirectory(self, prefix):
        import os
        path = os.path.join(self._temp, prefix)
        os.makedirs(path, exist_ok=True)
        return path

    # Output and reporting.
    def AddStdoutHandlerCallback(self, regex):
        handler = StdoutHandler(regex)
        self.StdoutHandlers.append(handler)
        return handler

    def GetRegexMatch(self, index):
        return self._match.group(index)

    def SetProgress(self, progress):
        self.progress.append(float(progress))

    def SetStatusMessage(self, message):
        self.status.append(message)

    def LogInfo(self, message):
        self.log.append(message)

    def LogWarning(self, message):
        self.log.append("WARNING: " + message)

    def FailRender(self, message):
        raise RenderFailed(message)


def split_arguments(text):
    """Splits an argument string as a Windows command line is split (CommandLineToArgvW)."""
    args, current, i, quoted, started = [], [], 0, False, False
    while i < len(text):
        c = text[i]
        if c == "\\":
            j = i
            while j < len(text) and text[j] == "\\":
                j += 1
            n = j - i
            if j < len(text) and text[j] == '"':
                current.append("\\" * (n // 2))
                if n % 2:
                    current.append('"')
                    i = j + 1
                else:
                    i = j
            else:
                current.append("\\" * n)
                i = j
            started = True
            continue
        if c == '"':
            quoted = not quoted
            started = True
        elif c in " \t" and not quoted:
            if started:
                args.append("".join(current))
                current, started = [], False
        else:
            current.append(c)
            started = True
        i += 1
    if started:
        args.append("".join(current))
    return args


class Worker:
    """Runs one task of a Simple plug-in: InitializeProcess, RenderExecutable,
    RenderArgument, the process with its output fed to the stdout handlers line by line,
    CheckExitCode, PostRenderTasks. Returns (failed message or None, output lines)."""

    def __init__(self, temp_dir, config=None):
        self.temp_dir = temp_dir
        self.config = dict(config or {})

    def render_task(self, plugin, plugin_info, task, aux_files=(), env=None):
        plugin._config = self.config
        plugin._plugin_info = dict(plugin_info)
        plugin._aux = list(aux_files)
        plugin._task = task
        plugin._temp = self.temp_dir
        lines = []
        try:
            plugin.InitializeProcessCallback()
            plugin.PreRenderTasksCallback()
            executable = plugin.RenderExecutableCallback()
            arguments = plugin.RenderArgumentCallback()
            process = subprocess.Popen(
                [executable] + split_arguments(arguments),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
            for raw in process.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                lines.append(line)
                if plugin.StdoutHandling:
                    for handler in plugin.StdoutHandlers:
                        match = handler.Regex.search(line)
                        if match:
                            plugin._match = match
                            handler.HandleCallback()
            code = process.wait()
            if plugin.CheckExitCodeCallback:
                plugin.CheckExitCodeCallback(code)
            elif code != 0:
                plugin.FailRender("exit code %d" % code)
            plugin.PostRenderTasksCallback()
        except RenderFailed as failed:
            plugin.PostRenderTasksCallback()
            return str(failed), lines
        return None, lines
