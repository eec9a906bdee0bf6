"""A client for one OpenAI-compatible server (vLLM, or LLaMA-Factory's `api`).

`Endpoint.check()` is the preflight every command runs first, so a wrong
address or API key is one clear message, not a run full of failed requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from deploy.urls import URLError, parse_url


class EndpointError(RuntimeError):
    """The server cannot be used; the message says why and what to do.

    `status` is the HTTP status of the refusal, None when no answer came.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class Endpoint:
    url: str
    api_key: str | None = None
    model: str | None = None
    timeout: float = 600.0

    def __post_init__(self) -> None:
        try:  # a malformed address is one message here, not requests' traceback later
            self.url = parse_url(self.url)
        except URLError as error:
            raise EndpointError(str(error)) from None
        if self.url.endswith("/v1"):
            self.url = self.url[: -len("/v1")]
        self.session = requests.Session()
        if self.api_key:
            self.session.headers["Authorization"] = f"Bearer {self.api_key}"

    def check(self) -> str:
        """Reach the server, prove the key works, settle the model name; return it."""
        served = self.models()
        if self.model is None:
            if not served:
                raise EndpointError(f"{self.url} serves no model (GET /v1/models is empty)")
            # vLLM lists the base model first and LoRA adapters after it: default to
            # the last, the fine-tune.
            self.model = served[-1]
        elif served and self.model not in served:
            raise EndpointError(
                f"{self.url} does not serve {self.model!r} (it serves: {', '.join(served)}); "
                "pass one of those with --model-name"
            )
        return self.model

    def models(self) -> list[str]:
        """The served model names (GET /v1/models): the base first, then LoRA adapters."""
        reply = self._request("GET", "/v1/models", timeout=10)
        return [model["id"] for model in reply.get("data", [])]

    def chat(self, messages: list[dict], **params) -> dict:
        """One non-streamed chat completion; the server's JSON reply."""
        body = {"model": self.model, "messages": messages, **params}
        return self._request("POST", "/v1/chat/completions", json=body)

    def tokenize(self, messages: list[dict], **params) -> list[int]:
        """The prompt token ids the server builds for `messages` (vLLM's /tokenize)."""
        body = {"model": self.model, "messages": messages, **params}
        return self._request("POST", "/tokenize", json=body)["tokens"]

    def _request(self, method: str, path: str, timeout: float | None = None, **kwargs) -> dict:
        try:
            reply = self.session.request(
                method, self.url + path, timeout=timeout or self.timeout, **kwargs
            )
        except requests.ConnectionError:
            raise EndpointError(
                f"no server answers at {self.url}; start one with `medfactory serve` "
                "or check --endpoint"
            ) from None
        except requests.Timeout:
            raise EndpointError(f"{self.url}{path} did not answer in time") from None
        if reply.status_code == 401:
            hint = "pass the server's --api-key" if not self.api_key else "check --api-key"
            raise EndpointError(
                f"{self.url} refused the request (401 Unauthorized); {hint}", status=401
            )
        if reply.status_code >= 400:
            raise EndpointError(
                f"{method} {self.url}{path} failed with HTTP {reply.status_code}: "
                f"{reply.text[:500]}",
                status=reply.status_code,
            )
        return reply.json()
