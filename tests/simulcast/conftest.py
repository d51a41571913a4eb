"""The Firefox fixture of tests/browsers, for the simulcast tests."""

from tests.browsers.conftest import firefox

__all__ = ["firefox"]
