"""The A/B gateway: one OpenAI-compatible front for several served versions.

Each request's `user` (OpenAI's own field) picks an arm by a stable hash,
weighted; the arm's server answers under the arm's served model name, whatever
`model` the client sent. The gateway adds the header `X-Medfactory-Arm`,
keeps the backend's completion id, hands every exchange and every piece of
feedback to a `Recorder` (the store lives outside `deploy/`), and counts per
arm in its own Prometheus registry, because vLLM counts LoRA requests under the
base model.

The stream is forwarded event by event as it arrives; parsing it for the
record happens on the side and the record is written before `[DONE]`, so a
client that sends feedback right after the answer always finds it.

An arm may have several replicas (`URL+URL`, deploy/replicas.py): a request
that fails before its answer starts is tried once more on another replica.
An arm may retrieve (`rag=INDEX`): the augmenter the caller hands in puts the
passages before the question, and the record keeps their sources.

Who calls is settled before anything else (deploy/auth.py: a shared key, personal
tokens, or a trusted sign-on proxy); with personal tokens the user is the token's,
whatever the body says. Per-user limits (deploy/limits.py) answer 429 with
Retry-After, counted per arm.
"""

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from deploy.auth import Authenticator, Refused, chat_user
from deploy.client import Endpoint, EndpointError
from deploy.limits import UserLimits
from deploy.replicas import Replica, ReplicaPool
from deploy.urls import URLError, parse_url

ARM_HEADER = "X-Medfactory-Arm"
CONVERSATION_HEADER = "X-Medfactory-Conversation"
DEFAULT_PORT = 8100
ARM_EXAMPLE = "base=http://127.0.0.1:8000,model=tiny,weight=1"
ARM_FORM = (
    "NAME=ENDPOINT[+ENDPOINT...][,model=NAME|models:/MODEL@ALIAS][,weight=W][,rag=INDEX][,top=K]"
)
ARM_OPTIONS = ("model", "weight", "rag", "top")
PROBE_INTERVAL = 5.0  # seconds: the longest a recovered replica waits to be put back

# messages -> (the messages to send, the sources of the passages put in them). It
# raises ValueError for a request it cannot augment (no question), anything else
# for a failure of its own (an index, an embeddings server).
Augment = Callable[[list], tuple[list, list]]
MAX_USER = 256  # the store's column
log = logging.getLogger("medfactory.gateway")


class GatewayError(RuntimeError):
    """The gateway cannot start as asked; the message says what to change."""


@dataclass(frozen=True)
class Arm:
    name: str
    endpoint: str  # the server's base URL, without /v1; replicas joined by "+"
    model: str | None = None  # its served model name; settled at start-up
    weight: float = 1.0
    rag: str | None = None  # the index whose passages go before each question
    top: int = 3  # passages per question, with rag
    version: str | None = None  # NAME@VERSION, when the arm was named by models:/...

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(self.endpoint.split("+"))


def parse_arm(text: str) -> Arm:
    """`NAME=ENDPOINT[+ENDPOINT...][,model=NAME][,weight=W][,rag=INDEX][,top=K]` -> Arm."""
    name, sep, rest = text.partition("=")
    parts = rest.split(",")
    if not sep or not name.strip() or not parts[0].strip():
        raise GatewayError(f"--arm {text!r}: expected {ARM_FORM}, e.g. {ARM_EXAMPLE}")
    options: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in ARM_OPTIONS or key.strip() in options:
            raise GatewayError(
                f"--arm {text!r}: {part!r} is not model=NAME, weight=W, rag=INDEX or top=K "
                "(each at most once)"
            )
        options[key.strip()] = value.strip()
    try:
        weight = float(options.get("weight", "1"))
    except ValueError:
        weight = -1.0
    if not weight > 0 or weight == float("inf"):
        raise GatewayError(f"--arm {text!r}: weight must be a positive number")
    top = options.get("top", "3")
    if not top.isdigit() or int(top) < 1:
        raise GatewayError(f"--arm {text!r}: top must be a whole number of passages, 1 or more")
    if "top" in options and not options.get("rag"):
        raise GatewayError(f"--arm {text!r}: top=K goes with rag=INDEX")
    endpoints = []
    for replica in parts[0].split("+"):
        try:  # the whole address, port range included, before any request is sent
            endpoints.append(parse_url(replica).removesuffix("/v1"))
        except URLError as error:
            raise GatewayError(f"--arm {text!r}: {error}") from None
    if len(set(endpoints)) < len(endpoints):
        raise GatewayError(f"--arm {text!r}: a replica is listed twice; list each once")
    return Arm(
        name.strip(), "+".join(endpoints), options.get("model") or None, weight,
        options.get("rag") or None, int(top),
    )  # fmt: skip


def check_arms(arms: list[Arm], api_key: str | None = None) -> list[Arm]:
    """Reach every arm's server and settle its served model; GatewayError naming the arm
    and address when one is down or does not serve that model."""
    if len(arms) < 1:
        raise GatewayError(f"no --arm given; e.g. --arm {ARM_EXAMPLE}")
    names = [arm.name for arm in arms]
    if len(set(names)) < len(names):
        raise GatewayError(f"two arms share a name ({', '.join(names)}); name each arm once")
    settled = []
    for arm in arms:
        model = arm.model
        for url in arm.endpoints:  # every replica must serve the arm's model
            endpoint = Endpoint(url, api_key=api_key, model=model)
            try:
                served = endpoint.models()
                if model is None and len(served) > 1:
                    raise EndpointError(
                        f"it serves several models ({', '.join(served)}); add model=NAME to the arm"
                    )
                model = endpoint.check()
            except EndpointError as error:
                raise GatewayError(f"arm {arm.name!r} ({url}): {error}") from None
        settled.append(replace(arm, model=model))
    return settled


def assign(experiment: str, user: str, arms: list[Arm]) -> Arm:
    """The arm for `user`: a stable hash (the same in every process and release) mapped
    onto the arms' cumulative weights."""
    digest = hashlib.sha256(f"{experiment}\x00{user}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(arm.weight for arm in arms)
    for arm in arms:
        point -= arm.weight
        if point < 0:
            return arm
    return arms[-1]


def conversation_key(user: str, messages: list) -> str:
    """Turns of one chat share their opening: the user and everything up to the first
    user message. A client can name the conversation itself with a header instead."""
    opening = []
    for message in messages:
        opening.append(message)
        if isinstance(message, dict) and message.get("role") == "user":
            break
    text = json.dumps([user, opening], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Exchange:
    """One request through the gateway, as recorded."""

    experiment: str
    user: str
    arm: str
    served_model: str
    conversation: str
    messages: list
    stream: bool
    started: float = field(default_factory=time.time)
    completion_id: str | None = None
    answer: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft: float | None = None  # seconds to the first token (streamed requests)
    latency: float | None = None  # seconds to the end of the answer
    error: str | None = None
    replica: str | None = None  # the server that answered, of the arm's replicas
    passages: list | None = None  # the sources of the retrieved passages, on a rag arm
    model_version: str | None = None  # the arm's recorded version (NAME@VERSION), if named


@dataclass(frozen=True)
class Feedback:
    completion_id: str
    user: str
    rating: int | None  # 1 thumbs up, -1 thumbs down
    correction: str
    comment: str


class Recorder(Protocol):
    def assignments(self) -> dict[str, str]:
        """user -> arm name, as assigned so far in this experiment."""

    def assign(self, user: str, arm: str) -> None: ...

    def record(self, exchange: Exchange) -> None: ...

    def feedback(self, feedback: Feedback) -> str | None:
        """Store it; the arm of the completion, or None when this user got no such one."""


class Metrics:
    """The gateway's own Prometheus registry, every series labelled by arm."""

    def __init__(self, arms: list[Arm]):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        buckets = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, float("inf"))
        prefix = "medfactory_gateway_"
        self.requests = Counter(
            f"{prefix}requests", "Chat requests", ["arm"], registry=self.registry
        )
        self.errors = Counter(
            f"{prefix}errors", "Failed chat requests", ["arm"], registry=self.registry
        )
        self.ttft = Histogram(
            f"{prefix}time_to_first_token_seconds", "Time to the first streamed token",
            ["arm"], buckets=buckets, registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            f"{prefix}request_latency_seconds", "Time to the end of the answer",
            ["arm"], buckets=buckets, registry=self.registry,
        )  # fmt: skip
        self.tokens = Counter(f"{prefix}tokens", "Tokens", ["arm", "kind"], registry=self.registry)
        self.feedback = Counter(
            f"{prefix}feedback", "Thumbs up and down", ["arm", "rating"], registry=self.registry
        )
        self.rate_limited = Counter(
            f"{prefix}rate_limited", "Requests refused by a per-user limit (429)", ["arm"],
            registry=self.registry,
        )  # fmt: skip
        self.unrecorded = Counter(
            f"{prefix}unrecorded", "Exchanges the store could not take", ["arm"],
            registry=self.registry,
        )  # fmt: skip
        # Per replica: every attempt, so a request retried elsewhere counts on both.
        by_replica = ["arm", "replica"]
        self.replica_requests = Counter(
            f"{prefix}replica_requests", "Requests sent to a replica", by_replica,
            registry=self.registry,
        )  # fmt: skip
        self.replica_errors = Counter(
            f"{prefix}replica_errors", "Requests a replica failed", by_replica,
            registry=self.registry,
        )  # fmt: skip
        self.replica_in_flight = Gauge(
            f"{prefix}replica_in_flight", "Requests a replica is answering", by_replica,
            registry=self.registry,
        )  # fmt: skip
        self.replica_healthy = Gauge(
            f"{prefix}replica_healthy", "1 while a replica takes requests, 0 while it is out",
            by_replica, registry=self.registry,
        )  # fmt: skip
        for arm in arms:  # every arm shows up from the first scrape, at zero
            for series in (
                self.requests, self.errors, self.ttft, self.latency, self.rate_limited
            ):  # fmt: skip
                series.labels(arm.name)
            for kind in ("prompt", "completion"):
                self.tokens.labels(arm.name, kind)
            for rating in ("up", "down"):
                self.feedback.labels(arm.name, rating)
            for url in arm.endpoints:
                for series in (self.replica_requests, self.replica_errors):
                    series.labels(arm.name, url)

    def show(self, pools: dict[str, ReplicaPool]) -> None:
        """The replicas' state as of now, for a scrape."""
        for arm, pool in pools.items():
            for replica in pool.replicas:
                self.replica_in_flight.labels(arm, replica.url).set(replica.in_flight)
                self.replica_healthy.labels(arm, replica.url).set(int(replica.healthy))

    def observe(self, exchange: Exchange) -> None:
        arm = exchange.arm
        self.requests.labels(arm).inc()
        if exchange.error:
            self.errors.labels(arm).inc()
        if exchange.ttft is not None:
            self.ttft.labels(arm).observe(exchange.ttft)
        if exchange.latency is not None and not exchange.error:
            self.latency.labels(arm).observe(exchange.latency)
        self.tokens.labels(arm, "prompt").inc(exchange.prompt_tokens or 0)
        self.tokens.labels(arm, "completion").inc(exchange.completion_tokens or 0)


def openai_error(message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: int | str | None = None) -> dict:  # fmt: skip
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def create_app(
    arms: list[Arm],
    recorder: Recorder,
    experiment: str = "ab",
    api_key: str | None = None,
    backend_api_key: str | None = None,
    timeout: float = 600.0,
    augmenters: dict[str, Augment] | None = None,
    probe_interval: float = PROBE_INTERVAL,
    authenticator: Authenticator | None = None,
    limits: UserLimits | None = None,
):
    """The FastAPI app; `arms` as settled by `check_arms`, `augmenters` by arm name for the
    arms that retrieve; `authenticator` settles who calls (default: `api_key` alone),
    `limits` the per-user limits."""
    import aiohttp
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from pydantic import BaseModel, ConfigDict, ValidationError

    by_name = {arm.name: arm for arm in arms}
    augmenters = augmenters or {}
    metrics = Metrics(arms)
    pools = {arm.name: ReplicaPool(arm.endpoints, probe_interval) for arm in arms}
    assigned = {user: arm for user, arm in recorder.assignments().items() if arm in by_name}
    backend_headers = {"Authorization": f"Bearer {backend_api_key}"} if backend_api_key else {}
    clients: dict[str, aiohttp.ClientSession] = {}  # by replica URL

    async def probe_out_replicas() -> None:
        while True:
            await asyncio.sleep(0.25)
            for pool in pools.values():
                for replica in pool.due():
                    try:
                        async with clients[replica.url].get(
                            "health", timeout=aiohttp.ClientTimeout(total=2)
                        ) as answer:
                            pool.probed(replica, answer.status == 200)
                    except (aiohttp.ClientError, TimeoutError):
                        pool.probed(replica, False)

    async def lifespan(_app):
        # aiohttp rather than httpx: measured, half the CPU per proxied request. No
        # connection limit: the gateway must not queue what vLLM would batch.
        for url in {url for arm in arms for url in arm.endpoints}:
            clients[url] = aiohttp.ClientSession(
                base_url=url + "/", headers=backend_headers,
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout),
            )  # fmt: skip
        prober = asyncio.create_task(probe_out_replicas())
        yield
        prober.cancel()
        for client in clients.values():
            await client.close()

    auth = authenticator or Authenticator("none", api_key)
    limits = limits or UserLimits()
    refusal_kinds = {401: "authentication_error", 403: "permission_error"}

    # A dependency, not a middleware: Starlette's HTTP middleware re-streams every
    # response through a memory channel, a cost on every token.
    async def identify(request: Request) -> None:
        if request.url.path == "/health":
            return
        peer = request.client.host if request.client else None
        if auth.mode == "users":  # the directory is a database: off the event loop
            caller = await asyncio.to_thread(auth.identify, request.headers, peer)
        else:
            caller = auth.identify(request.headers, peer)
        request.state.caller = caller

    app = FastAPI(
        title="medfactory A/B gateway", lifespan=lifespan, docs_url=None, redoc_url=None,
        openapi_url=None, dependencies=[Depends(identify)],
    )  # fmt: skip
    app.state.metrics = metrics

    @app.exception_handler(Refused)
    async def refuse(_request, error: Refused):
        kind = refusal_kinds.get(error.status, "invalid_request_error")
        return JSONResponse(openai_error(error.message, kind), status_code=error.status)

    async def arm_for(user: str) -> Arm:
        name = assigned.get(user)
        if name is None:
            name = assign(experiment, user, arms).name
            assigned[user] = name
            await asyncio.to_thread(recorder.assign, user, name)
        return by_name[name]

    def replica_failed(arm: str, replica: Replica) -> None:
        metrics.replica_errors.labels(arm, replica.url).inc()
        pools[arm].failed(replica)
        log.warning("arm %s: replica %s failed; out until it answers /health", arm, replica.url)

    async def send(arm: Arm, exchange: Exchange, forwarded: dict):
        """POST to one of the arm's replicas; when it fails before answering (refused, 5xx),
        once more to another. (reply, replica), or (None, None) with the error recorded."""
        tried: list[Replica] = []
        while len(tried) < 2:
            replica = pools[arm.name].pick(exchange.conversation, tuple(tried))
            if replica is None:
                break
            tried.append(replica)
            metrics.replica_requests.labels(arm.name, replica.url).inc()
            replica.in_flight += 1
            try:
                reply = await clients[replica.url].post("v1/chat/completions", json=forwarded)
            except (aiohttp.ClientError, TimeoutError) as error:
                replica.in_flight -= 1
                replica_failed(arm.name, replica)
                exchange.error = f"backend unreachable: {type(error).__name__}: {error}"
                continue
            if reply.status >= 500:
                replica_failed(arm.name, replica)
                if len(tried) < 2 and pools[arm.name].pick(exchange.conversation, tuple(tried)):
                    reply.release()
                    replica.in_flight -= 1
                    continue
            exchange.error, exchange.replica = None, replica.url
            return reply, replica
        if not tried:
            exchange.error = (
                "backend unreachable: every replica of the arm is out "
                "(each is probed on /health until it answers)"
            )
        return None, None

    async def finish(exchange: Exchange) -> None:
        limits.release(exchange.user)
        exchange.latency = time.time() - exchange.started
        metrics.observe(exchange)
        try:
            await asyncio.to_thread(recorder.record, exchange)
        except Exception as error:  # the store is down: the answer still goes out
            metrics.unrecorded.labels(exchange.arm).inc()
            # Only the error's type: its message could quote the prompt.
            log.error("could not record an exchange of arm %s (%s)", exchange.arm,
                      type(error).__name__)  # fmt: skip

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus():
        metrics.show(pools)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models():
        card = {"id": experiment, "object": "model", "created": 0, "owned_by": "medfactory"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        started = time.time()
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(openai_error("the body is not JSON"), status_code=400)
        if not isinstance(body, dict):
            return JSONResponse(openai_error("the body must be a JSON object"), status_code=400)
        # A signed-in caller is the user, whatever the body says.
        user = chat_user(request.state.caller) or body.get("user")
        if not isinstance(user, str) or not user.strip() or len(user) > MAX_USER:
            message = (
                f"'user' is required (at most {MAX_USER} characters): the A/B gateway "
                "assigns each user to one version"
            )
            return JSONResponse(openai_error(message, param="user"), status_code=400)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            message = "'messages' must be a non-empty list of chat messages"
            return JSONResponse(openai_error(message, param="messages"), status_code=400)
        arm = await arm_for(user)
        if limits.active and (wait := limits.admit(user)) is not None:
            metrics.rate_limited.labels(arm.name).inc()
            message = f"rate limit reached for user {user!r}; try again in {wait} s"
            return JSONResponse(
                openai_error(message, "requests", code="rate_limit_exceeded"), status_code=429,
                headers={"Retry-After": str(wait)},
            )  # fmt: skip
        stream = bool(body.get("stream"))
        exchange = Exchange(
            experiment, user, arm.name, arm.model,
            request.headers.get(CONVERSATION_HEADER, "")[:64] or conversation_key(user, messages),
            messages, stream, started=started, model_version=arm.version,
        )  # fmt: skip
        headers = {ARM_HEADER: arm.name}
        forwarded = {**body, "model": arm.model, "user": user}
        if arm.name in augmenters:
            try:
                forwarded["messages"], exchange.passages = await asyncio.to_thread(
                    augmenters[arm.name], messages
                )
            except ValueError as error:
                limits.release(user)
                return JSONResponse(
                    openai_error(str(error), param="messages"), status_code=400, headers=headers
                )
            except Exception as error:  # the index or its embeddings server
                exchange.error = f"retrieval failed: {type(error).__name__}: {error}"[:300]
                await finish(exchange)
                message = "retrieval for this version failed; try again later"
                return JSONResponse(
                    openai_error(message, "server_error", code=502), status_code=502,
                    headers=headers,
                )  # fmt: skip
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if stream:  # usage is what the record needs; the client sees it only if it asked
            forwarded["stream_options"] = {
                **(body.get("stream_options") or {}),
                "include_usage": True,
            }
        reply, replica = await send(arm, exchange, forwarded)
        if reply is None:
            await finish(exchange)
            message = "the model server behind this gateway is unavailable; try again later"
            return JSONResponse(
                openai_error(message, "server_error", code=502), status_code=502, headers=headers
            )

        async def done(exchange: Exchange, backend_failed: bool = False) -> None:
            replica.in_flight -= 1
            if backend_failed:
                replica_failed(arm.name, replica)
            await finish(exchange)

        if reply.status >= 400 or not stream:
            status, read_failed = reply.status, False
            try:
                content = await reply.read()
            except (aiohttp.ClientError, TimeoutError) as error:
                content, status, read_failed = b"", 502, True
                exchange.error = f"backend failed mid-answer: {type(error).__name__}"
            finally:
                reply.release()
            _read_reply(exchange, status, content)
            await done(exchange, backend_failed=read_failed)
            if status >= 400 and not content:
                content = json.dumps(openai_error("the model server failed", "server_error",
                                                  code=status)).encode()  # fmt: skip
            return Response(content, status_code=status, headers=headers,
                            media_type="application/json")  # fmt: skip
        return StreamingResponse(
            _relay(reply, exchange, wants_usage, done), headers=headers,
            media_type="text/event-stream",
        )  # fmt: skip

    class FeedbackIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        id: str
        user: str | None = None  # required unless the caller signed in
        rating: Literal[1, -1] | None = None
        correction: str = ""
        comment: str = ""

    @app.post("/v1/feedback")
    async def feedback(request: Request):
        try:
            given = FeedbackIn.model_validate_json(await request.body())
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors()
            )
            return JSONResponse(openai_error(f"feedback: {problems}"), status_code=400)
        user = chat_user(request.state.caller) or given.user
        if not user:
            return JSONResponse(openai_error("feedback: user: Field required"), status_code=400)
        if given.rating is None and not given.correction.strip() and not given.comment.strip():
            message = "feedback needs a rating (1 or -1), a correction or a comment"
            return JSONResponse(openai_error(message), status_code=400)
        item = Feedback(given.id, user, given.rating, given.correction, given.comment)
        arm = await asyncio.to_thread(recorder.feedback, item)
        if arm is None:
            message = f"no completion {given.id!r} was given to user {user!r}"
            return JSONResponse(openai_error(message, "not_found_error"), status_code=404)
        if given.rating is not None:
            metrics.feedback.labels(arm, "up" if given.rating > 0 else "down").inc()
        return {"id": given.id, "object": "feedback", "status": "recorded"}

    return app


def _read_reply(exchange: Exchange, status: int, content: bytes) -> None:
    """Fill the record from a whole (non-streamed or refused) reply."""
    try:
        reply = json.loads(content) if content else {}
    except ValueError:
        reply = {}
    if status >= 400:
        error = reply.get("error") if isinstance(reply, dict) else None
        detail = error.get("message") if isinstance(error, dict) else reply.get("message", "")
        exchange.error = exchange.error or f"HTTP {status}: {str(detail)[:300]}"
        return
    exchange.completion_id = reply.get("id")
    choice = (reply.get("choices") or [{}])[0]
    exchange.answer = (choice.get("message") or {}).get("content") or ""
    exchange.finish_reason = choice.get("finish_reason")
    usage = reply.get("usage") or {}
    exchange.prompt_tokens = usage.get("prompt_tokens")
    exchange.completion_tokens = usage.get("completion_tokens")


def _event_payload(event: bytes) -> bytes | None:
    for line in event.splitlines():
        if line.startswith(b"data:"):
            return line[5:].strip()
    return None


async def _relay(reply, exchange: Exchange, wants_usage: bool, finish) -> AsyncIterator[bytes]:
    """Forward the backend's server-sent events, reading the record off them;
    `finish(exchange, backend_failed)` once the answer is over, however it ended."""
    import aiohttp

    pieces: list[str] = []
    buffer = b""
    done = cut = False
    try:
        async for chunk in reply.content.iter_any():
            buffer += chunk
            *events, buffer = buffer.split(b"\n\n")
            out = []
            for event in events:
                payload = _event_payload(event)
                if payload == b"[DONE]":
                    done = True
                    continue  # sent after the record is written
                if payload and not _take_chunk(payload, exchange, pieces) and not wants_usage:
                    continue  # the usage chunk the gateway asked for on its own account
                out.append(event + b"\n\n")
            if out:
                yield b"".join(out)
        if not done and not exchange.error:
            exchange.error = "the model server ended the stream before [DONE]"
            cut = True
    except (aiohttp.ClientError, TimeoutError) as error:
        exchange.error = f"the model server failed mid-stream: {type(error).__name__}"
        cut = True
    except BaseException:  # the client went away: still recorded, never lost
        exchange.error = exchange.error or "the client disconnected mid-stream"
        exchange.answer = "".join(pieces)
        reply.close()
        await asyncio.shield(finish(exchange))
        raise
    reply.release()
    exchange.answer = "".join(pieces)
    await finish(exchange, cut)
    if exchange.error and not done:
        error = openai_error(exchange.error, "server_error", code=502)
        yield b"data: " + json.dumps(error).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _take_chunk(payload: bytes, exchange: Exchange, pieces: list[str]) -> bool:
    """Read one chunk into the record; False for a usage-only chunk (no choices)."""
    try:
        chunk = json.loads(payload)
    except ValueError:
        return True
    if "error" in chunk:
        error = chunk["error"]
        exchange.error = str(error.get("message") if isinstance(error, dict) else error)[:300]
        return True
    exchange.completion_id = exchange.completion_id or chunk.get("id")
    usage = chunk.get("usage")
    if usage:
        exchange.prompt_tokens = usage.get("prompt_tokens")
        exchange.completion_tokens = usage.get("completion_tokens")
    choices = chunk.get("choices") or []
    for choice in choices:
        delta = choice.get("delta") or {}
        text = delta.get("content") or ""
        if (text or delta.get("reasoning_content")) and exchange.ttft is None:
            exchange.ttft = time.time() - exchange.started
        if text:
            pieces.append(text)
        if choice.get("finish_reason"):
            exchange.finish_reason = choice["finish_reason"]
    return bool(choices)
