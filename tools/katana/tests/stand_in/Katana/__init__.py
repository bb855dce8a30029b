"""A stand-in for the parts of Katana's Python API the farm plug-in uses.

Katana cannot be installed here; this package reproduces the documented classes and
signatures of `FarmAPI` (Katana 4.0v1 developer guide, "Render Farm Plug-ins") closely
enough to load and drive the plug-in as Katana would.
"""

from . import FarmAPI  # noqa: F401
