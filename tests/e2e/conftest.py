"""Fixtures for runs across real processes; a failing test's report ends with their log tails."""

from collections.abc import Callable, Iterator

import pytest

from tests.e2e.harness import Harness

_live_harnesses: list[Harness] = []


@pytest.fixture(scope="module")
def harness_factory(django_db_setup, tmp_path_factory) -> Iterator[Callable[..., Harness]]:
    """Make harnesses bound to the pytest-django test database; all are stopped at module end.

    Module scope, not session: a worker and beat left running would relay the outbox rows of
    the unit tests that run after this module.
    """
    created: list[Harness] = []

    def make(**extra_env: str | None) -> Harness:
        harness = Harness.from_django_settings(
            workdir=tmp_path_factory.mktemp("e2e"), extra_env=extra_env
        )
        created.append(harness)
        _live_harnesses.append(harness)
        return harness

    yield make
    for harness in created:
        harness.stop_all()
        _live_harnesses.remove(harness)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and _live_harnesses:
        tails = "\n".join(harness.log_tails() for harness in _live_harnesses)
        report.sections.append(("e2e process logs (tails)", tails))
    return report
