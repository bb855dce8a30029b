"""Stand-in for Deadline.Scripting."""

import os
import re


class FileUtils:
    @staticmethod
    def SearchFileList(paths):
        """The first existing file of a `;`- or newline-separated list, else ""."""
        for path in re.split(r"[;\r\n]+", paths or ""):
            path = path.strip()
            if path and os.path.isfile(path):
                return path
        return ""
