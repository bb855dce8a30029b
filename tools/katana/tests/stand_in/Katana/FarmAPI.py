"""Stand-in for Katana's FarmAPI: the documented classes and signatures only."""


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
        kWaiting = "Waiting"
        kRunning = "Running"
        kCompleted = "Completed"
        kCancelled = "Cancelled"
        kFailed = "Failed"
        kAllStates = ("Waiting", "Running", "Completed", "Cancelled", "Failed")

    def __init__(self, jobId, name, startTime, endTime, state, renderLogFilename):
        if state not in Job.State.kAllStates:
            raise ValueError("invalid job state %r" % (state,))
        self.jobId = jobId
        self.name = name
        self.startTime = startTime
        self.endTime = endTime
        self.state = state
        self.renderLogFilename = renderLogFilename


class BaseFarmPlugin(object):
    """Base class for farm plug-ins (every method must be overridden)."""

    class InstallationMetadata(object):
        def __init__(self, katanaRoot, renderPluginDsoPaths, renderbootCommand=None):
            self.katanaRoot = katanaRoot
            self.renderPluginDsoPaths = renderPluginDsoPaths
            self.renderbootCommand = renderbootCommand or (katanaRoot.rstrip("/") + "/bin/renderboot")

    def createTempDirectory(self, renderContextName):
        raise NotImplementedError

    def copyRenderFiles(self, filenames, renderContextName):
        raise NotImplementedError

    def getInstallationMetadata(self):
        raise NotImplementedError

    def getRenderEnvironment(self, renderContextName):
        raise NotImplementedError

    def submitJob(self, jobRequest):
        raise NotImplementedError

    def getJobState(self, jobId):
        raise NotImplementedError

    def getJobs(self, filters):
        raise NotImplementedError

    def getRenderLogFilename(self, jobId):
        raise NotImplementedError

    def startJob(self, jobId):
        raise NotImplementedError

    def stopJob(self, jobId):
        raise NotImplementedError


class FarmPluginManager(object):
    """Holds the JobRequest type Katana passes to submitJob()."""

    class JobRequest(object):
        """What Katana hands to submitJob(). Katana does not document the attributes; the
        plug-in reads them defensively (docs/katana.md lists the names it tries). This
        stand-in uses the names Katana's own examples use."""

        def __init__(self, renderContextName, commands, renderType="diskRender", frameRange=None,
                     environment=None, jobName=None):
            self.renderContextName = renderContextName
            self.commands = commands
            self.renderType = renderType
            self.frameRange = frameRange
            self.environment = environment or {}
            self.jobName = jobName
