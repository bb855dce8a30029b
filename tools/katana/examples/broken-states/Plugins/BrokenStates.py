"""Broken on purpose: reports its own state words ("queued", "done") instead of Job.State.

FarmAPI: "Plug-in authors should map their farm-specific Job states to this set of states."
Rejected by the host (a state outside Job.State.kAllStates is a scheduler error naming it).
"""
import os
import sys

# Katana imports this module from the Plugins folder; the example it varies lives next door.
sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "..", "..", "subprocess-farm", "Plugins")))

import SubprocessFarm  # noqa: E402
from Katana import FarmAPI  # noqa: E402,F401


class BrokenStatesPlugin(SubprocessFarm.SubprocessFarmPlugin):
    """Forgets to map the native states onto Job.State."""

    def _state(self, native):
        return native


PluginRegistry = [("FarmPlugin", 2.0, "Subprocess Farm (broken: states)", BrokenStatesPlugin)]
