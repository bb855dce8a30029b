"""Broken on purpose: copyRenderFiles loses the last file (an off-by-one).

FarmAPI: copyRenderFiles returns "a map containing each of the given filenames and the
absolute path of its respective copy". Rejected by the host (a file without a copy).
"""
import os
import sys

# Katana imports this module from the Plugins folder; the example it varies lives next door.
sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "..", "..", "subprocess-farm", "Plugins")))

import SubprocessFarm  # noqa: E402
from Katana import FarmAPI  # noqa: E402,F401


class BrokenCopyPlugin(SubprocessFarm.SubprocessFarmPlugin):
    """Copies every file but the last."""

    def copyRenderFiles(self, filenames, renderContextName):
        return SubprocessFarm.SubprocessFarmPlugin.copyRenderFiles(self, filenames[:-1], renderContextName)


PluginRegistry = [("FarmPlugin", 2.0, "Subprocess Farm (broken: copy)", BrokenCopyPlugin)]
