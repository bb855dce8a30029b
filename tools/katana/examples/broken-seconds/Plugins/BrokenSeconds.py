"""Broken on purpose: reports startTime/endTime in seconds, not milliseconds.

FarmAPI.Job: "startTime (int) - The time in milliseconds when the job ... was started."
Rejected by the host (a time below 1e11 looks like seconds since the epoch).
"""
import os
import sys

# Katana imports this module from the Plugins folder; the example it varies lives next door.
sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "..", "..", "subprocess-farm", "Plugins")))

import SubprocessFarm  # noqa: E402
from Katana import FarmAPI  # noqa: E402,F401


class BrokenSecondsPlugin(SubprocessFarm.SubprocessFarmPlugin):
    """Hands its farm's times to Katana in seconds."""

    def _job(self, jobId, record):
        def seconds(ms):
            return None if ms is None else ms // 1000
        return FarmAPI.Job(jobId, record["name"], seconds(record.get("startTime")), seconds(record.get("endTime")),
                           self._state(record["state"]), record["log"])


PluginRegistry = [("FarmPlugin", 2.0, "Subprocess Farm (broken: seconds)", BrokenSecondsPlugin)]
