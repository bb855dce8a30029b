"""Broken on purpose: getInstallationMetadata returns a dict, not an InstallationMetadata.

FarmAPI: getInstallationMetadata returns "An instance of InstallationMetadata containing the
details of the remote installation of Katana". Rejected by the host.
"""
import os
import sys

# Katana imports this module from the Plugins folder; the example it varies lives next door.
sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "..", "..", "subprocess-farm", "Plugins")))

import SubprocessFarm  # noqa: E402
from Katana import FarmAPI  # noqa: E402,F401


class BrokenMetadataPlugin(SubprocessFarm.SubprocessFarmPlugin):
    """Describes the installation as a plain dict."""

    def getInstallationMetadata(self):
        return {"katanaRoot": os.environ.get("KATANA_ROOT", "/opt/Katana"), "renderPluginDsoPaths": {}}


PluginRegistry = [("FarmPlugin", 2.0, "Subprocess Farm (broken: metadata)", BrokenMetadataPlugin)]
