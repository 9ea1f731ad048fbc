"""The relay's counters reach /metrics when the Procfile's lines run as a PaaS starts them.

No PROMETHEUS_MULTIPROC_DIR in the environment: the settings choose the folder (the default,
var/prometheus under the project) and must make the worker count into it, although the
celery command line imports prometheus-client before the settings run; flower, which runs
from the same settings, must not.
"""

from pathlib import Path

import httpx
import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.clients import ApiUser
from tests.e2e.harness import async_wait_until

pytestmark = pytest.mark.e2e

DEFAULT_METRICS_DIR = Path(settings.BASE_DIR) / "var" / "prometheus"


def samples(text: str) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


@pytest.fixture
def default_metrics_dir():
    """The project's own folder: leave it as it was found (a local run may be using it)."""
    DEFAULT_METRICS_DIR.mkdir(parents=True, exist_ok=True)
    before = set(DEFAULT_METRICS_DIR.iterdir())
    yield DEFAULT_METRICS_DIR
    for path in set(DEFAULT_METRICS_DIR.iterdir()) - before:
        path.unlink(missing_ok=True)


async def test_worker_counters_show_on_metrics_without_the_variable(
    harness_factory, default_metrics_dir, transactional_db
):
    harness = harness_factory(PROMETHEUS_MULTIPROC_DIR=None)
    try:
        [web], _worker, _beat = harness.start_stack(web=1)
        flower = harness.add_flower()  # its own series must stay out of the web's /metrics
        harness.launch([flower])
        async with httpx.AsyncClient(base_url=web.url, timeout=10) as http:
            before = samples((await http.get("/metrics")).text)
            user = await ApiUser.register(web.url)
            try:
                for name in ("Ada", "Grace", "Hedy"):
                    await user.patch_profile(first_name=name)
            finally:
                await user.aclose()

            async def counted() -> bool:
                now = samples((await http.get("/metrics")).text)
                return (
                    now["wizard_relayed_total"] >= before["wizard_relayed_total"] + 3
                    and now["wizard_status_pushes_total"]
                    >= before["wizard_status_pushes_total"] + 1
                )

            await async_wait_until(counted, timeout=10, describe="the worker's counters")
            text = (await http.get("/metrics")).text
    finally:
        harness.stop_all()

    found = samples(text)
    assert not [name for name in found if name.startswith("flower_")]
    # The labelled counter is there before its first retry.
    assert found['wizard_relay_retries_total{reason="transient"}'] >= 0
    assert found['wizard_relay_retries_total{reason="error"}'] >= 0
    assert any(path.name.startswith("counter_") for path in default_metrics_dir.iterdir())
