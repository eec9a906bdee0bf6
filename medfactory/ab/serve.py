"""Starting the live A/B gateway (deploy/gateway.py) with its recorder on the store."""

from __future__ import annotations

from deploy.gateway import Arm
from medfactory.ab.recorder import StoreRecorder
from medfactory.store.db import Store


def gateway_app(
    arms: list[Arm], experiment: str, store: Store, api_key: str | None = None,
    backend_api_key: str | None = None,
):  # fmt: skip
    """Check every arm's server (GatewayError naming a dead one), then the gateway's app
    recording into `store`; returns (app, the arms as settled)."""
    from deploy.gateway import check_arms, create_app

    arms = check_arms(arms, backend_api_key)
    recorder = StoreRecorder(store, experiment, arms)
    return create_app(arms, recorder, experiment, api_key, backend_api_key), arms


def serve_gateway(
    arms: list[Arm], experiment: str, store: Store, host: str, port: int,
    api_key: str | None = None, backend_api_key: str | None = None,
    on_ready=print,
) -> None:  # fmt: skip
    """Serve the gateway until Ctrl-C. The access log stays off: no prompt, answer or key
    goes into a log."""
    import uvicorn

    from deploy.gateway import GatewayError
    from deploy.process import port_in_use

    if port_in_use(host, port):
        raise GatewayError(f"port {port} on {host} is already in use; pass another --port")
    app, arms = gateway_app(arms, experiment, store, api_key, backend_api_key)
    for arm in arms:
        on_ready(f"arm {arm.name}: {arm.endpoint} model={arm.model} weight={arm.weight:g}")
    on_ready(f"gateway {experiment!r} on http://{host}:{port}/v1 (Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
