"""Every test under tests/unit runs with process starts and listening sockets refused (helpers.isolation)."""

from __future__ import annotations

import pytest

from helpers.isolation import no_processes_or_servers


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with no_processes_or_servers():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with no_processes_or_servers():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    with no_processes_or_servers():
        return (yield)
