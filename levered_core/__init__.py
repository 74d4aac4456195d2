"""Levered CLI core: the shared library every command group builds on.

This package must stay cheap to import: it is on the path of ``levered --version``.
"""

__version__ = "0.1.0"
