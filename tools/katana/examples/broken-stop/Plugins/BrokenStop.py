"""Broken on purpose: stopJob marks the job Cancelled but never kills its processes.

FarmAPI: stopJob "Stops the Job specified by the job ID". The host cannot see processes;
the conformance check on stopping a running job rejects it (its heartbeat keeps growing).
"""
import os
import sys

# Katana imports this module from the Plugins folder; the example it varies lives next door.
sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "..", "..", "subprocess-farm", "Plugins")))

import SubprocessFarm  # noqa: E402
from Katana import FarmAPI  # noqa: E402,F401


class BrokenStopPlugin(SubprocessFarm.SubprocessFarmPlugin):
    """Updates its job table on stop and leaves the renderer running."""

    def _kill(self, pid):
        pass


PluginRegistry = [("FarmPlugin", 2.0, "Subprocess Farm (broken: stop)", BrokenStopPlugin)]
