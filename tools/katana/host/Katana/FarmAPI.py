"""Stand-in for Katana's `FarmAPI` module: the documented classes and signatures.

A maintained part of the product: `farm_katana_host.py` injects it as `Katana.FarmAPI`
before it loads a Plugins folder, and the plug-in tests load plug-ins against it. It follows
Katana 4.0v1's developer guide ("Render Farm Plug-ins"): names, signatures and the
documented behaviour (`Job` raises `ValueError` for a state outside `Job.State.kAllStates`,
`InstallationMetadata` deduces the renderboot command from the Katana root). Everything
Katana leaves undocumented (the attributes of `FarmPluginManager.JobRequest`) is marked as
this project's choice and written down in docs/katana.md.
"""


class FarmPluginException(Exception):
    """Raised by farm plug-ins in response to exceptional circumstances."""


class JobNotFoundException(FarmPluginException):
    """Raised when a requested job cannot be found."""

    def __init__(self, jobId, contextMessage):
        FarmPluginException.__init__(self, "job %s not found: %s" % (jobId, contextMessage))
        self.jobId = jobId
        self.contextMessage = contextMessage


class Job(object):
    """Minimal POPO describing a job, as Katana's FarmAPI.Job."""

    class State(object):
        """The states of a job; plug-ins map their farm's states onto these."""

        kWaiting = "Waiting"
        kRunning = "Running"
        kCompleted = "Completed"
        kCancelled = "Cancelled"
        kFailed = "Failed"
        kAllStates = ("Waiting", "Running", "Completed", "Cancelled", "Failed")

    def __init__(self, jobId, name, startTime, endTime, state, renderLogFilename):
        """`startTime`/`endTime` are milliseconds; `state` one of `Job.State.kAllStates`.

        Raises ValueError if the given state is not one of the states defined in `State`.
        """
        if state not in Job.State.kAllStates:
            raise ValueError("invalid job state %r: not one of Job.State.kAllStates %r"
                             % (state, Job.State.kAllStates))
        self.jobId = jobId
        self.name = name
        self.startTime = startTime
        self.endTime = endTime
        self.state = state
        self.renderLogFilename = renderLogFilename

    def __repr__(self):
        return "Job(%r, %r, %r, %r, %r, %r)" % (self.jobId, self.name, self.startTime, self.endTime,
                                                self.state, self.renderLogFilename)


class BaseFarmPlugin(object):
    """Base class for farm plug-ins.

    Every method raises NotImplementedError here. `submitJob` and `getJobState` are the
    minimum a farm provides; a plug-in that does not override another method disables the
    corresponding functionality (staging, listing, the render log, start, stop).
    """

    class InstallationMetadata(object):
        """Describes the installation of Katana running on a render node."""

        def __init__(self, katanaRoot, renderPluginDsoPaths, renderbootCommand=None):
            self.katanaRoot = katanaRoot
            self.renderPluginDsoPaths = renderPluginDsoPaths
            # "If None it will be deduced from the given katanaRoot."
            self.renderbootCommand = renderbootCommand or (str(katanaRoot).rstrip("/") + "/bin/renderboot")

    # -- Job submission ------------------------------------------------------------------

    def createTempDirectory(self, renderContextName):
        """Returns a directory for the render context, accessible by the render nodes."""
        raise NotImplementedError

    def copyRenderFiles(self, filenames, renderContextName):
        """Copies the files where render nodes can read them; returns {filename: copy}."""
        raise NotImplementedError

    def getInstallationMetadata(self):
        """Returns a BaseFarmPlugin.InstallationMetadata for the render nodes' Katana."""
        raise NotImplementedError

    def getRenderEnvironment(self, renderContextName):
        """Returns {name: value}: variables to add to the render job's environment."""
        raise NotImplementedError

    def submitJob(self, jobRequest):
        """Submits a FarmPluginManager.JobRequest; returns the job's unique id."""
        raise NotImplementedError

    # -- Information retrieval -----------------------------------------------------------

    def getJobState(self, jobId):
        """Returns a value of Job.State; raises JobNotFoundException for an unknown id."""
        raise NotImplementedError

    def getJobs(self, filters):
        """Returns a list of Job matching the plug-in-defined filters."""
        raise NotImplementedError

    def getRenderLogFilename(self, jobId):
        """Returns the render log's path or None; raises JobNotFoundException for an unknown id."""
        raise NotImplementedError

    # -- Job control ---------------------------------------------------------------------

    def startJob(self, jobId):
        """Starts the job, if it is not already running."""
        raise NotImplementedError

    def stopJob(self, jobId):
        """Stops the job, if it is not already stopped."""
        raise NotImplementedError


class FarmPluginManager(object):
    """Holds the JobRequest type Katana passes to submitJob()."""

    class JobRequest(object):
        """What Katana hands to submitJob().

        Katana does not document the attributes. These are the names Katana's examples use
        and FarmBridge.py reads first (docs/katana.md, "How a Katana JobRequest becomes a
        farm request"); `frames`, `chunkSize` and `tasks` are this project's additions so a
        plug-in can spread a frame range over render nodes:

        renderContextName  str, the render context (a UUID)
        jobName            str
        renderType         "diskRender", "previewRender" or "liveRender"
        commands           list of argv lists, run in order; the first that fails ends the job
        environment        {name: value} for every command
        workingDirectory   str or None
        frameRange         (first, last) or None
        frames             sorted list of frame numbers, or None
        chunkSize          frames per task, or None
        tasks              list of JobRequest.Task: the same commands split by chunk
        """

        class Command(object):
            """One command of a task: its argv and the variables (FARM_*) it runs with on
            top of the request's environment."""

            def __init__(self, argv, env=None):
                self.argv = list(argv)
                self.env = dict(env or {})

            def __repr__(self):
                return "Command(%r, %r)" % (self.argv, self.env)

        class Task(object):
            """One chunk: its index from 0, its frames (or None) and its commands in order."""

            def __init__(self, index, frames, commands):
                self.index = index
                self.frames = frames
                self.commands = list(commands)

            def __repr__(self):
                return "Task(%r, %r, %r)" % (self.index, self.frames, self.commands)

        def __init__(self, renderContextName, commands, renderType="diskRender", frameRange=None,
                     environment=None, jobName=None, workingDirectory=None, frames=None,
                     chunkSize=None, tasks=None):
            self.renderContextName = renderContextName
            self.commands = commands
            self.renderType = renderType
            self.frameRange = frameRange
            self.environment = environment or {}
            self.jobName = jobName
            self.workingDirectory = workingDirectory
            self.frames = frames
            self.chunkSize = chunkSize
            self.tasks = tasks
