"""The connector's YAML config: loading, validation, environment overrides.

Validation errors name the key and the problem, so `check-config` and start-up can say exactly
what is wrong. Endpoints can be overridden from the environment (MMS_KAFKA_BOOTSTRAP_SERVERS,
MMS_SCHEMA_REGISTRY_URL, MMS_S3_ENDPOINT_URL, and MMS_SHARED_WINDOW_URL for a config with
dedupe.shared) so one file serves every environment.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationError,
    field_validator,
    model_validator,
)

from connector.providers import PROVIDERS
from connector.providers.contract import Limits, OptionsT
from connector.providers.signatures import Signature


def _kafka_topic(v: str) -> str:
    if not v or len(v) > 249 or not all(c.isalnum() or c in "._-" for c in v):
        raise ValueError("must be 1-249 characters of letters, digits, '.', '_' or '-'")
    return v


Topic = Annotated[str, AfterValidator(_kafka_topic)]
Compatibility = Literal["BACKWARD", "BACKWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Secret(Strict):
    """A credential read from an environment variable or a file, never written in the config."""

    env: str | None = None
    file: Path | None = None

    def resolve(self, env: Mapping[str, str], key: str) -> str:
        if (self.env is None) == (self.file is None):
            raise ConfigError(f"{key}: give exactly one of env or file")
        if self.file is None:
            value = env.get(self.env or "")
            if not value:
                raise ConfigError(f"{key}: environment variable {self.env} is not set")
            return value
        try:
            value = self.file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{key}: cannot read {self.file}: {exc.strerror}") from None
        if not value:
            # An empty key would verify what anyone signs with an empty key.
            raise ConfigError(f"{key}: {self.file} is empty")
        return value


Setting = str | int | float | bool
_LIMITS = Limits()
# librdkafka's message.max.bytes default: the producer refuses larger records outright.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000


class KafkaConfig(Strict):
    bootstrap_servers: str = "127.0.0.1:9092"
    # librdkafka settings for every client (e.g. security.protocol, sasl.mechanisms) ...
    common: dict[str, Setting] = Field(default_factory=dict)
    # ... and for the producer only (e.g. linger.ms). The delivery guarantees (acks=all,
    # idempotence) are not overridable.
    producer: dict[str, Setting] = Field(default_factory=dict)
    # Secret librdkafka settings (e.g. sasl.password), from the environment or files.
    secrets: dict[str, Secret] = Field(default_factory=dict)
    # On shutdown, how long to wait for queued records to be acknowledged.
    flush_timeout_seconds: float = Field(30.0, ge=0)

    @property
    def max_message_bytes(self) -> int:
        """The largest record the producer takes (message.max.bytes as configured)."""
        value = self.producer.get("message.max.bytes", self.common.get("message.max.bytes"))
        return DEFAULT_MAX_MESSAGE_BYTES if value is None else int(value)

    def client_settings(self, env: Mapping[str, str]) -> dict[str, Setting]:
        """Settings every Kafka client of the connector uses, secrets resolved."""
        secrets = {k: v.resolve(env, f"kafka.secrets.{k}") for k, v in self.secrets.items()}
        return {"bootstrap.servers": self.bootstrap_servers, **self.common, **secrets}


class RegistryConfig(Strict):
    url: str = "http://127.0.0.1:8081"
    compatibility: Compatibility = "BACKWARD_TRANSITIVE"
    username: str | None = None
    password: Secret | None = None
    timeout_seconds: float = Field(10.0, gt=0)
    # At start-up, how long to keep retrying a registry that does not answer yet (replicas
    # and the registry installed together) before giving up; the chart's start-up probe
    # allows 120 s.
    startup_patience_seconds: float = Field(90.0, ge=0)

    def client_settings(self, env: Mapping[str, str]) -> dict[str, Any]:
        settings: dict[str, Any] = {"url": self.url, "timeout": self.timeout_seconds}
        if self.username is not None:
            password = (
                self.password.resolve(env, "schema_registry.password") if self.password else ""
            )
            settings["basic.auth.user.info"] = f"{self.username}:{password}"
        return settings


class ServerConfig(Strict):
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    # Past this many callbacks in flight, answer 503 + Retry-After instead of queueing.
    max_in_flight: int = Field(256, gt=0)
    # ... and while the event loop runs this late: the CPU is saturated, so every callback let
    # in now only lengthens the queue in front of the others (measured in bench/).
    max_loop_lag_ms: float = Field(50, gt=0)
    # Below the app (connector/http_limits.py): a request line plus headers over this many bytes,
    # or more headers than this, is answered 431 before httptools buffers it ...
    max_header_bytes: int = Field(32 * 1024, ge=1024, le=1024 * 1024)
    max_header_count: int = Field(100, ge=10, le=10_000)
    # ... a connection whose headers are not complete this long after it opened or after its
    # previous response, 408 (slowloris) ...
    header_read_timeout_seconds: float = Field(10, gt=0, le=300)
    # ... and past this many open connections a new one is answered 503 + Retry-After, unread.
    max_connections: int = Field(1000, ge=1, le=100_000)
    # Idle keep-alive connections are closed after this (uvicorn's timeout_keep_alive).
    keep_alive_timeout_seconds: float = Field(5, gt=0, le=300)
    # Processes serving the port (connector/workers.py), each with its own event loop and
    # producer: one per core the pod may use.
    workers: int = Field(1, ge=1, le=64)


def _bucket_name(v: str) -> str:
    # S3's bucket naming rules (the strictest of the S3-compatible servers').
    if not 3 <= len(v) <= 63 or not all(c.islower() or c.isdigit() or c in ".-" for c in v):
        raise ValueError("must be 3-63 characters of lower-case letters, digits, '.' or '-'")
    return v


class S3StoreConfig(Strict):
    bucket: Annotated[str, AfterValidator(_bucket_name)] = "mms-media"
    # S3Proxy, MinIO, Ceph, GCS's S3 API...; None: AWS's endpoint for the region. Plain http is
    # allowed only here, for a server the operator named. env MMS_S3_ENDPOINT_URL overrides.
    endpoint_url: str | None = None
    region: str = "us-east-1"
    # Keys are <prefix><sha256[:2]>/<sha256>.
    prefix: str = ""
    server_side_encryption: Literal["AES256", "aws:kms"] | None = None
    kms_key_id: str | None = None
    # Both or neither; neither: the default chain (AWS_* env, web identity/IRSA, ECS, instance
    # profile).
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    # Records' media gain a fetchable `url`: this https base + the key, or a presigned GET of
    # this lifetime (SigV4 caps it at 7 days).
    public_url_base: str | None = None
    presign_seconds: int | None = Field(None, gt=0, le=7 * 24 * 3600)

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("public_url_base")
    @classmethod
    def _https_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("https://"):
            raise ValueError("must be an https:// URL")
        return v

    @field_validator("prefix")
    @classmethod
    def _relative(cls, v: str) -> str:
        if v.startswith("/") or "//" in v:
            raise ValueError("must not start with '/' or contain '//'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> S3StoreConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither")
        if self.kms_key_id is not None and self.server_side_encryption != "aws:kms":
            raise ValueError("kms_key_id needs server_side_encryption: aws:kms")
        if self.public_url_base is not None and self.presign_seconds is not None:
            raise ValueError("set public_url_base or presign_seconds, not both")
        return self


class MediaConfig(Strict):
    # The connector's default is the single-machine store; the chart defaults to s3.
    store: Literal["filesystem", "s3"] = "filesystem"
    root: Path = Path("var/media")  # filesystem store only
    s3: S3StoreConfig = Field(default_factory=S3StoreConfig)


class BasicAuthConfig(Strict):
    username: str
    password: Secret


class TokenAuthConfig(Strict):
    # Either a request header carries the token, or the last path segment does
    # (the route becomes <path>/<token>).
    header: str | None = None
    in_path: bool = False
    value: Secret

    @model_validator(mode="after")
    def _one_place(self) -> TokenAuthConfig:
        if (self.header is None) == (not self.in_path):
            raise ValueError("set exactly one of header or in_path: true")
        return self


class SignatureConfig(Strict):
    """Keys for the provider's own request signature (its `Provider.signature` mechanism)."""

    # The signing secrets (Telnyx: its public keys): two while one replaces the other.
    keys: list[Secret] = Field(min_length=1, max_length=4)
    # The URL the provider was given for this route, as it posts to it (behind a proxy, the
    # public one; the query sent is appended): required for providers that sign the URL.
    url: str | None = None
    # How far from now a signed timestamp may be (providers that sign one); default: the
    # provider's (300 s for most).
    max_age_seconds: float | None = Field(None, gt=0, le=86_400)

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith(("https://", "http://")) or "?" in v or "#" in v):
            raise ValueError("must be an http(s) URL without query or fragment")
        return v


class AuthConfig(Strict):
    basic: BasicAuthConfig | None = None
    token: TokenAuthConfig | None = None
    signature: SignatureConfig | None = None
    allow_cidrs: list[IPvAnyNetwork] = Field(default_factory=list)
    # X-Forwarded-For is believed only when the direct peer is one of these proxies.
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    # Says out loud that anyone may post to this route (a local stack, a private network):
    # without any check and without this, start-up and check-config warn.
    unauthenticated: bool = False

    @property
    def open_to_anyone(self) -> bool:
        return not (self.basic or self.token or self.allow_cidrs or self.signature)


class MediaFetchConfig(Strict):
    """How the mirror fetches one provider's hosted media (connector/fetch.py)."""

    # Basic auth (Bandwidth: the account's API user; Twilio: the account SID and auth
    # token), sent only to the URL's own origin.
    username: str | None = None
    password: Secret | None = None
    # Or a whole Authorization header value (Infobip: `App <API key>`), sent the same way.
    authorization: Secret | None = None
    # Host names, or *.suffix for any subdomain; empty: any public host.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Loopback and private addresses too (tests, on-prem media hosts); never the metadata ones.
    allow_private: bool = False
    timeout_seconds: float = Field(10.0, gt=0, le=600)
    max_bytes: int = Field(5 * 1024 * 1024, gt=0)
    max_redirects: int = Field(3, ge=0, le=20)
    retry_initial_seconds: float = Field(1.0, gt=0)
    retry_max_seconds: float = Field(300.0, gt=0)
    # After this long past the record's received_at, an entry still failing is published as
    # unavailable with the reason: keep it under the provider's URL lifetime.
    horizon_seconds: float = Field(3600.0, ge=0)

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, v: list[str]) -> list[str]:
        for host in v:
            name = host.removeprefix("*.")
            if not name or not all(c.isalnum() or c in ".-" for c in name) or "*" in name:
                raise ValueError(f"{host!r}: expected a host name or *.suffix")
        return [host.lower() for host in v]

    @model_validator(mode="after")
    def _consistent(self) -> MediaFetchConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("set both username and password, or neither")
        if self.username is not None and self.authorization is not None:
            raise ValueError("set username and password, or authorization, not both")
        if self.retry_max_seconds < self.retry_initial_seconds:
            raise ValueError("retry_max_seconds must be at least retry_initial_seconds")
        return self


class ProviderConfig(BaseModel):
    """The keys every provider has. Any other key is one of the provider's own options,
    validated by its `Provider.options` model when the whole config is (Config)."""

    model_config = ConfigDict(extra="allow")

    enabled: bool = False
    auth: AuthConfig = Field(default_factory=AuthConfig)
    path: str | None = None
    topic: Topic = "mms.events"
    # Reply 503 when Kafka has not acknowledged within this time; below the provider's timeout.
    deadline_seconds: float = Field(8.0, gt=0, le=120)
    # A body that has not fully arrived by then is refused (slow clients hold no slot forever).
    read_timeout_seconds: float = Field(30.0, gt=0)
    default_country: str | None = Field(None, min_length=2, max_length=2)
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0)
    # Parser budgets (connector.providers.contract.Limits): past them a callback is refused (413).
    max_elements: int = Field(_LIMITS.max_elements, gt=0)
    max_events: int = Field(_LIMITS.max_events, gt=0)
    max_media: int = Field(_LIMITS.max_media, ge=0)
    max_recipients: int = Field(_LIMITS.max_recipients, gt=0)
    media_fetch: MediaFetchConfig = Field(default_factory=MediaFetchConfig)

    def options(self, model: type[OptionsT]) -> OptionsT:
        """The provider's own options: the keys beside the common ones, read by its model."""
        return model.model_validate(self.model_extra or {})

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError("must start with '/'")
        return v

    @property
    def limits(self) -> Limits:
        return Limits(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Limits)})


class DeadLetterConfig(Strict):
    topic: Topic = "mms.dead-letters"
    # Larger bodies are kept in the media store and referenced: Kafka's default message limit
    # is about 1 MB, well under the body limits.
    inline_max_bytes: int = Field(900_000, gt=0)


class MirrorConfig(Strict):
    """`mms-connector mirror`: events topics in, every event out with its media mirrored."""

    group_id: str = Field("mms-connector-mirror", min_length=1)
    topic: Topic = "mms.events.mirrored"
    # Default: the enabled providers' topics.
    source_topics: list[Topic] = Field(default_factory=list)
    # Records fetched at once (of different keys; one key's records are published in order).
    concurrency: int = Field(16, gt=0, le=1024)


class SharedWindowConfig(Strict):
    """A Redis-protocol server (Valkey, Redis) every replica claims events in before producing
    them (connector/claims.py)."""

    url: str = Field(pattern=r"^rediss?://[^@\s]+$")  # no credentials in it: see password
    password: Secret | None = None
    # Longer than a delivery can take (the producer's message.timeout.ms, 120 s, + a deadline):
    # a claim outlives its producer only when the replica died holding it.
    claim_ttl_seconds: float = Field(130, gt=0)
    # How long a published event id is remembered for every replica: the providers' retry
    # horizon (Bandwidth retries for 24 h).
    published_ttl_seconds: float = Field(86_400, gt=0)
    # Each call's budget; past it the callback goes on with this replica's window alone. A
    # store that is down refuses at once; this bounds one that hangs. At 0.25 s a CPU-starved
    # pod (its event loop late) failed open thousands of times in a bench run: each is a
    # repeat that may be produced again, so the budget is generous within the deadline.
    timeout_seconds: float = Field(1.0, gt=0, le=10)


class DedupeConfig(Strict):
    # Repeats of an event published within this window are answered but not produced again.
    window_seconds: float = Field(3600, ge=0)
    max_entries: int = Field(1_000_000, gt=0)
    # Re-read the window's event ids from Kafka at start-up, so a restart does not forget them.
    rebuild_on_start: bool = True
    # Shared by every replica and worker; without it each has its own window only.
    shared: SharedWindowConfig | None = None


class Config(Strict):
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    dead_letters: DeadLetterConfig = Field(default_factory=DeadLetterConfig)
    dedupe: DedupeConfig = Field(default_factory=DedupeConfig)
    schema_registry: RegistryConfig = Field(default_factory=RegistryConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)
    mirror: MirrorConfig = Field(default_factory=MirrorConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)

    @field_validator("providers")
    @classmethod
    def _known(cls, v: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        unknown = sorted(set(v) - set(PROVIDERS))
        if unknown:
            raise ValueError(f"unknown provider {unknown[0]!r}; known: {', '.join(PROVIDERS)}")
        problems: list[tuple[str, tuple[int | str, ...], str]] = []
        for name, settings in v.items():
            try:
                settings.options(PROVIDERS[name].options)
            except ValidationError as exc:
                problems += [(name, err["loc"], err["msg"]) for err in exc.errors()]
            for key, msg in _signature_problems(PROVIDERS[name].signature, settings.auth):
                problems.append((name, ("auth", "signature", key), msg))
        if problems:
            raise ProviderOptionsError(problems)
        return v

    def enabled(self) -> dict[str, ProviderConfig]:
        return {name: p for name, p in self.providers.items() if p.enabled}

    def warnings(self) -> list[str]:
        """What is allowed but probably not meant: said by check-config and at start-up."""
        found = [
            f"providers.{name}.auth: no basic, token, signature or allow_cidrs: anyone can post "
            "callbacks (set auth.unauthenticated: true to say so)"
            for name, p in self.enabled().items()
            if p.auth.open_to_anyone and not p.auth.unauthenticated
        ]
        found += [
            f"providers.{name}.auth.signature is not set: {name} signs its callbacks, and "
            "without its keys a forged callback is not told apart"
            for name, p in self.enabled().items()
            if PROVIDERS[name].signature is not None
            and p.auth.signature is None
            and not p.auth.unauthenticated  # said out loud: no checks, on purpose
        ]
        if self.server.workers > 1 and self.dedupe.shared is None:
            found.append(
                "server.workers > 1 without dedupe.shared: a repeat reaching another worker "
                "is produced again (each worker has its own window)"
            )
        return found

    def route_path(self, name: str) -> str:
        return self.providers[name].path or f"/callbacks/{name}"


def _signature_problems(mechanism: Signature | None, auth: AuthConfig) -> list[tuple[str, str]]:
    """What of `auth.signature` cannot work with the provider's mechanism: said, not ignored."""
    settings = auth.signature
    if settings is None:
        return []
    if mechanism is None:
        return [("keys", "this provider does not sign its callbacks")]
    problems = []
    if mechanism.signs_url and settings.url is None:
        problems.append(("url", "required: this provider signs the URL it posts to"))
    if not mechanism.signs_url and settings.url is not None:
        problems.append(("url", "this provider does not sign the URL"))
    if not mechanism.signs_time and settings.max_age_seconds is not None:
        problems.append(("max_age_seconds", "this provider signs no time"))
    if auth.basic is not None and mechanism.header == "authorization":
        problems.append(("keys", "the signature comes in the Authorization header: no auth.basic"))
    return problems


class ConfigError(Exception):
    """A config that cannot be used; the message names each bad key."""


class ProviderOptionsError(ValueError):
    """Keys of `providers.<name>` that provider's own options model refused."""

    def __init__(self, problems: list[tuple[str, tuple[int | str, ...], str]]) -> None:
        self.lines = [
            (f"providers.{name}." + ".".join(str(part) for part in loc), msg)
            for name, loc, msg in problems
        ]
        super().__init__("; ".join(f"{key}: {msg}" for key, msg in self.lines))


def load(path: Path | str | None, env: Mapping[str, str] | None = None) -> Config:
    raw: Any = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return _validated(raw, env, path)


def for_provider(name: str, env: Mapping[str, str] | None = None) -> Config:
    """Defaults with one provider enabled (what `translate` uses without --config)."""
    if name not in PROVIDERS:
        raise ConfigError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
    return _validated({"providers": {name: {"enabled": True}}}, env, None)


def _validated(
    raw: dict[str, Any], env: Mapping[str, str] | None, path: Path | str | None
) -> Config:
    _apply_env(raw, os.environ if env is None else env)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    if servers := env.get("MMS_KAFKA_BOOTSTRAP_SERVERS"):
        raw.setdefault("kafka", {})["bootstrap_servers"] = servers
    if url := env.get("MMS_SCHEMA_REGISTRY_URL"):
        raw.setdefault("schema_registry", {})["url"] = url
    if s3_url := env.get("MMS_S3_ENDPOINT_URL"):
        raw.setdefault("media", {}).setdefault("s3", {})["endpoint_url"] = s3_url
    if (shared_url := env.get("MMS_SHARED_WINDOW_URL")) and "shared" in raw.get("dedupe", {}):
        raw["dedupe"]["shared"]["url"] = shared_url


def _describe(exc: ValidationError, path: Path | str | None) -> str:
    found: list[tuple[str, str]] = []
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ProviderOptionsError):
            found += cause.lines
        else:
            found.append((".".join(str(part) for part in err["loc"]) or "(top level)", err["msg"]))
    lines = [f"{path or 'config'}: {len(found)} problem(s)"]
    lines += [f"  {key}: {msg}" for key, msg in found]
    return "\n".join(lines)
