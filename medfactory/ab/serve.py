"""Starting the live A/B gateway (deploy/gateway.py) with its recorder on the store, the
retrieval of its `rag=` arms, and its access: the users directory, limits, TLS."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import select

from deploy.gateway import PROBE_INTERVAL, Arm
from deploy.limits import Rate
from medfactory.ab.recorder import StoreRecorder
from medfactory.store.db import ExchangeRow, Store


@dataclass(frozen=True)
class Access:
    """Who may call the gateway and how much (`medfactory gateway --auth ...`)."""

    mode: str = "none"  # none | users | proxy (deploy/auth.py)
    api_key: str | None = None  # mode none's shared key
    trusted_proxies: tuple[str, ...] = ()
    rate: Rate | None = None
    concurrent: int | None = None
    store_scrubbed: bool = False
    actor: str | None = None  # who started it, for the audit log [default: the login name]


def augmenters(arms: list[Arm], index_dir: Path | None = None) -> dict:
    """arm name -> its augmenter, for the arms with rag=INDEX; the indexes are opened
    now, so a missing one stops the start (RagError naming it), not a request."""
    from medfactory.rag import augmenter

    return {arm.name: augmenter(arm.rag, arm.top, index_dir) for arm in arms if arm.rag}


def directory_lookup(store: Store):
    """The gateway's `lookup(token) -> (name, role) | None`, on the store's users."""
    from medfactory.access.users import user_for_token

    def lookup(token: str):
        user = user_for_token(store, token)
        return (user.name, user.role) if user is not None else None

    return lookup


def authenticator(access: Access, store: Store):
    from deploy.auth import Authenticator, parse_networks

    lookup = directory_lookup(store) if access.mode == "users" else None
    return Authenticator(
        access.mode, access.api_key, lookup, parse_networks(access.trusted_proxies)
    )


def recorded_versions(arms: list[Arm], uri: str | None = None) -> list[Arm]:
    """Arms named by a recorded version (model=models:/NAME@ALIAS) resolved in the MLflow
    store: the model name its server gives it, and the version itself (NAME@VERSION, not
    the alias, which moves), kept with the experiment and in its audit entry."""
    if not any(str(arm.model or "").startswith("models:/") for arm in arms):
        return arms
    from deploy.gateway import GatewayError
    from medfactory.tracking.errors import TrackingError
    from medfactory.tracking.serving import served_as

    resolved = []
    for arm in arms:
        if str(arm.model or "").startswith("models:/"):
            try:
                version, name = served_as(arm.model, uri)
            except TrackingError as error:
                raise GatewayError(f"arm {arm.name!r}: {error}") from None
            arm = replace(arm, model=name, version=version)
        resolved.append(arm)
    return resolved


def record_start(store: Store, experiment: str, experiment_id: int, arms: list[Arm],
                 actor: str | None) -> None:  # fmt: skip
    """The audit log's "experiment-started", once: when the experiment has no exchanges yet."""
    from medfactory.access.audit import os_user, record

    with store.session() as session:
        begun = session.scalar(
            select(ExchangeRow.id).where(ExchangeRow.experiment_id == experiment_id).limit(1)
        )
    if begun is None:
        details = {"arms": {arm.name: arm.model for arm in arms}}
        if any(arm.version for arm in arms):
            details["versions"] = {arm.name: arm.version for arm in arms if arm.version}
        record(store, actor or os_user(), "experiment-started", experiment, details)


def gateway_app(
    arms: list[Arm], experiment: str, store: Store, api_key: str | None = None,
    backend_api_key: str | None = None, index_dir: Path | None = None,
    probe_interval: float = PROBE_INTERVAL, access: Access | None = None,
    tracking_uri: str | None = None,
):  # fmt: skip
    """Check every arm's servers (GatewayError naming a dead one) and indexes, then the
    gateway's app recording into `store`; returns (app, the arms as settled)."""
    from deploy.gateway import check_arms, create_app
    from deploy.limits import UserLimits
    from medfactory.ab.scrubbed import ScrubbedRecorder

    access = access or Access(api_key=api_key)
    auth = authenticator(access, store)  # its mistakes before any server is reached
    retrieval = augmenters(arms, index_dir)
    arms = check_arms(recorded_versions(arms, tracking_uri), backend_api_key)
    recorder = StoreRecorder(store, experiment, arms)
    record_start(store, experiment, recorder.experiment_id, arms, access.actor)
    app = create_app(
        arms, ScrubbedRecorder(recorder) if access.store_scrubbed else recorder, experiment,
        access.api_key, backend_api_key, augmenters=retrieval, probe_interval=probe_interval,
        authenticator=auth, limits=UserLimits(access.rate, access.concurrent),
    )  # fmt: skip
    return app, arms


def serve_gateway(
    arms: list[Arm], experiment: str, store: Store, host: str, port: int,
    api_key: str | None = None, backend_api_key: str | None = None,
    on_ready=print, index_dir: Path | None = None, probe_interval: float = PROBE_INTERVAL,
    access: Access | None = None, tls_cert: Path | None = None, tls_key: Path | None = None,
    tracking_uri: str | None = None,
) -> None:  # fmt: skip
    """Serve the gateway until Ctrl-C. The access log stays off: no prompt, answer or key
    goes into a log."""
    import uvicorn

    from deploy.gateway import GatewayError
    from deploy.process import port_in_use
    from deploy.tls import check_tls, plain_http_warning, scheme

    ssl_options = check_tls(tls_cert, tls_key)
    if port_in_use(host, port):
        raise GatewayError(f"port {port} on {host} is already in use; pass another --port")
    access = access or Access(api_key=api_key)
    app, arms = gateway_app(
        arms, experiment, store, api_key, backend_api_key, index_dir, probe_interval, access,
        tracking_uri,
    )  # fmt: skip
    for arm in arms:
        retrieval = f" rag={arm.rag} top={arm.top}" if arm.rag else ""
        replicas = " + ".join(arm.endpoints)
        version = f" ({arm.version})" if arm.version else ""
        on_ready(
            f"arm {arm.name}: {replicas} model={arm.model}{version} weight={arm.weight:g}"
            f"{retrieval}"
        )
    if warning := plain_http_warning(host, bool(ssl_options)):
        on_ready(warning)
    limits = ", ".join(
        text for text in (
            f"{access.rate} per user" if access.rate else "",
            f"{access.concurrent} at once per user" if access.concurrent else "",
        ) if text
    )  # fmt: skip
    on_ready(
        f"gateway {experiment!r} on {scheme(bool(ssl_options))}://{host}:{port}/v1, auth "
        f"{access.mode}{', ' + limits if limits else ''}"
        f"{', storing scrubbed text' if access.store_scrubbed else ''} (Ctrl-C stops it)"
    )
    # proxy_headers off: --trusted-proxy judges the connection's own peer address, never one
    # that X-Forwarded-For claims.
    uvicorn.run(
        app, host=host, port=port, access_log=False, log_level="warning", proxy_headers=False,
        **ssl_options,
    )  # fmt: skip
