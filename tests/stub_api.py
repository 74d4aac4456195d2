"""The stub API lives in the public testing helpers; tests import it from here too."""

from levered_core.testing import StubAPI, envelope_error

__all__ = ["StubAPI", "envelope_error"]
