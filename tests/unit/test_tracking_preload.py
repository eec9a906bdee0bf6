"""MLflow imported and the embedded store opened in the background while a run trains: the
recording then gets that client, and a store that does not exist yet is left alone."""

from __future__ import annotations

from pathlib import Path

from medfactory.tracking import client as tracking_client
from medfactory.tracking.client import open_client, preload


def test_an_existing_store_is_opened_in_the_background_and_handed_to_the_recording(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_client(uri)  # the store exists (MLflow's migrations run here, not in the thread)
    preload(uri)
    tracking_client._preloading[-1].join()
    background = tracking_client._preloaded[uri]
    assert open_client(uri) is background
    assert not tracking_client._preloading and uri not in tracking_client._preloaded
    assert background.search_registered_models(max_results=1) == []  # usable on this thread
    assert open_client(uri) is not background  # handed over once; later callers open their own


def test_a_new_store_is_left_to_the_recording(tmp_path):
    store = tmp_path / "new" / "mlflow.db"
    preload(f"sqlite:///{store}")
    while tracking_client._preloading:
        tracking_client._preloading.pop().join()
    assert not Path(store).exists() and not tracking_client._preloaded
    assert open_client(f"sqlite:///{store}").search_experiments(max_results=1)  # Default
