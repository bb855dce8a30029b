"""A stand-in for the parts of Katana's Python API farm plug-ins use.

Katana is not installed where farm plug-ins are tested; this package reproduces the
documented classes and signatures of `FarmAPI` (Katana 4.0v1 developer guide, "Render Farm
Plug-ins") closely enough to load and drive a plug-in as Katana would. The plug-in host
(`../farm_katana_host.py`) and the plug-in tests use it.
"""

from . import FarmAPI  # noqa: F401
