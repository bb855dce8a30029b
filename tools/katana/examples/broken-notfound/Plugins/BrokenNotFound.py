"""Broken on purpose: swallows JobNotFoundException (returns None for an unknown id).

FarmAPI: getJobState and getRenderLogFilename raise JobNotFoundException "if the specified job
does not exist on the render farm". Rejected by the host and by the unknown-id checks.
"""
import os
import sys

# Katana imports this module from the Plugins folder; the example it varies lives next door.
sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "..", "..", "subprocess-farm", "Plugins")))

import SubprocessFarm  # noqa: E402
from Katana import FarmAPI  # noqa: E402,F401


class BrokenNotFoundPlugin(SubprocessFarm.SubprocessFarmPlugin):
    """Treats an unknown id as "nothing to report"."""

    def getJobState(self, jobId):
        try:
            return SubprocessFarm.SubprocessFarmPlugin.getJobState(self, jobId)
        except FarmAPI.JobNotFoundException:
            return None

    def getRenderLogFilename(self, jobId):
        try:
            return SubprocessFarm.SubprocessFarmPlugin.getRenderLogFilename(self, jobId)
        except FarmAPI.JobNotFoundException:
            return None

    def startJob(self, jobId):
        try:
            SubprocessFarm.SubprocessFarmPlugin.startJob(self, jobId)
        except FarmAPI.JobNotFoundException:
            pass

    def stopJob(self, jobId):
        try:
            SubprocessFarm.SubprocessFarmPlugin.stopJob(self, jobId)
        except FarmAPI.JobNotFoundException:
            pass


PluginRegistry = [("FarmPlugin", 2.0, "Subprocess Farm (broken: not found)", BrokenNotFoundPlugin)]
