"""Starting the live A/B gateway (deploy/gateway.py) with its recorder on the store and
the retrieval of its `rag=` arms."""

from __future__ import annotations

from pathlib import Path

from deploy.gateway import PROBE_INTERVAL, Arm
from medfactory.ab.recorder import StoreRecorder
from medfactory.store.db import Store


def augmenters(arms: list[Arm], index_dir: Path | None = None) -> dict:
    """arm name -> its augmenter, for the arms with rag=INDEX; the indexes are opened
    now, so a missing one stops the start (RagError naming it), not a request."""
    from medfactory.rag import augmenter

    return {arm.name: augmenter(arm.rag, arm.top, index_dir) for arm in arms if arm.rag}


def gateway_app(
    arms: list[Arm], experiment: str, store: Store, api_key: str | None = None,
    backend_api_key: str | None = None, index_dir: Path | None = None,
    probe_interval: float = PROBE_INTERVAL,
):  # fmt: skip
    """Check every arm's servers (GatewayError naming a dead one) and indexes, then the
    gateway's app recording into `store`; returns (app, the arms as settled)."""
    from deploy.gateway import check_arms, create_app

    retrieval = augmenters(arms, index_dir)
    arms = check_arms(arms, backend_api_key)
    recorder = StoreRecorder(store, experiment, arms)
    app = create_app(
        arms, recorder, experiment, api_key, backend_api_key, augmenters=retrieval,
        probe_interval=probe_interval,
    )  # fmt: skip
    return app, arms


def serve_gateway(
    arms: list[Arm], experiment: str, store: Store, host: str, port: int,
    api_key: str | None = None, backend_api_key: str | None = None,
    on_ready=print, index_dir: Path | None = None, probe_interval: float = PROBE_INTERVAL,
) -> None:  # fmt: skip
    """Serve the gateway until Ctrl-C. The access log stays off: no prompt, answer or key
    goes into a log."""
    import uvicorn

    from deploy.gateway import GatewayError
    from deploy.process import port_in_use

    if port_in_use(host, port):
        raise GatewayError(f"port {port} on {host} is already in use; pass another --port")
    app, arms = gateway_app(
        arms, experiment, store, api_key, backend_api_key, index_dir, probe_interval
    )
    for arm in arms:
        retrieval = f" rag={arm.rag} top={arm.top}" if arm.rag else ""
        replicas = " + ".join(arm.endpoints)
        on_ready(f"arm {arm.name}: {replicas} model={arm.model} weight={arm.weight:g}{retrieval}")
    on_ready(f"gateway {experiment!r} on http://{host}:{port}/v1 (Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
