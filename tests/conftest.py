"""The fixtures every test folder shares live in tests/support/fixtures.py."""

pytest_plugins = ["tests.support.fixtures"]
