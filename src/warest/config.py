"""Configuration: the one place that reads the environment (and an optional ``.env``).

Every setting is validated when the server starts; a wrong value stops it with a message
naming the variable. ``docs/configuration.md`` documents each variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

T = TypeVar("T")


class ConfigError(ValueError):
    """A variable has a value warest cannot use."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name


SECRET_NAMES = frozenset(
    {
        "WAREST_AUTHADMIN_PASSWORD",
        "WAREST_ADMIN_APIKEY",
        "WAREST_SECRET_KEY",
        "WAREST_DATABASE_URL",
        "WAREST_REDIS_URL",
        "WAREST_PROXY_URLS",
        "WAREST_NEONIZE_STORE",
        "WEBHOOK_DEFAULT_SECRET",
    }
)


def _int(lo: int | None = None, hi: int | None = None) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"'{raw}' is not an integer") from None
        if lo is not None and value < lo:
            raise ConfigError(name, f"must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise ConfigError(name, f"must be <= {hi}, got {value}")
        return value

    return parse


def _bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(name, f"'{raw}' is not a boolean (true/false)")


def _str(name: str, raw: str) -> str:
    return raw.strip()


def _float(lo: float, hi: float) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(name, f"'{raw}' is not a number") from None
        if not lo <= value <= hi:
            raise ConfigError(name, f"must be between {lo} and {hi}, got {value}")
        return value

    return parse


def _country_code(name: str, raw: str) -> str:
    value = raw.strip().lstrip("+")
    if not re.fullmatch(r"[0-9]{1,4}", value):
        raise ConfigError(name, "must be 1-4 digits (e.g. 62)")
    return value


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ConfigError(name, f"'{raw}' is not one of {', '.join(choices)}")
        return value

    return parse


def _pg_url(name: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    if urlparse(value).scheme not in {"postgres", "postgresql"}:
        raise ConfigError(name, "must be a postgresql:// URL")
    return value


def _redis_url(name: str, raw: str) -> str:
    value = raw.strip()
    if value and urlparse(value).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(name, "must be a redis:// or rediss:// URL")
    return value


def _origins(name: str, raw: str) -> tuple[str, ...]:
    items = [o.strip() for chunk in raw.split("\n") for o in chunk.split(",")]
    out: list[str] = []
    for item in filter(None, items):
        if item == "*":
            return ("*",)
        parsed = urlparse(item)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise ConfigError(name, f"'{item}' is not an http(s) origin")
        out.append(f"{parsed.scheme}://{parsed.netloc}")
    return tuple(out)


def _networks(name: str, raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for item in filter(None, (p.strip() for p in raw.replace("\n", ",").split(","))):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(name, f"'{item}' is not an IP address or CIDR network") from None
    return tuple(nets)


def _log_level(name: str, raw: str) -> str:
    value = _choice("debug", "info", "warning", "warn", "error")(name, raw)
    return "warning" if value == "warn" else value


def _schema(name: str, raw: str) -> str:
    value = raw.strip() or "public"
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
        raise ConfigError(name, "must be a lower-case SQL identifier (a-z, 0-9, _)")
    return value


def _admin_username(name: str, raw: str) -> str:
    value = raw.strip()
    if value and not re.fullmatch(r"[a-zA-Z0-9._@-]{3,64}", value):
        raise ConfigError(name, "must be 3-64 characters of letters, digits, '.', '_', '@' or '-'")
    return value


def _admin_password(name: str, raw: str) -> str:
    value = raw.strip()
    if value and not 8 <= len(value) <= 1024:
        raise ConfigError(name, "must have 8 to 1024 characters")
    return value


def _proxies(name: str, raw: str) -> tuple[str, ...]:
    out = []
    for item in filter(None, (p.strip() for p in raw.replace("\n", ",").split(","))):
        if urlparse(item).scheme not in {"http", "https", "socks5", "socks5h"} or not urlparse(item).hostname:
            raise ConfigError(name, f"'{item}' is not an http(s):// or socks5:// proxy URL")
        out.append(item)
    return tuple(out)


def _sha2(name: str, raw: str) -> str:
    value = raw.strip().upper().replace("SHA", "").replace("-", "").replace("_", "")
    if value not in {"224", "256", "384", "512"}:
        raise ConfigError(name, f"'{raw}' is not one of 224, 256, 384, 512 (or sha256 style)")
    return value


def _url(name: str, raw: str) -> str:
    value = raw.strip()
    if value and (urlparse(value).scheme not in {"http", "https"} or not urlparse(value).hostname):
        raise ConfigError(name, "must be an http:// or https:// URL")
    return value


def _prefixes(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(filter(None, (p.strip() for p in raw.split(","))))
    if any(len(p) > 3 for p in items):
        raise ConfigError(name, "prefixes have 1 to 3 characters, separated by commas")
    return items


def _allow(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(filter(None, (p.strip() for p in raw.replace("\n", ",").split(","))))
    for item in items:
        if "/" in item:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(name, f"'{item}' is not a CIDR network") from None
        elif not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", item):
            raise ConfigError(name, f"'{item}' is not a host name, an address or a CIDR network")
    return items


def _setting(env: str, default: str, parse: Callable[[str, str], Any], aliases: tuple[str, ...] = ()) -> Any:
    return field(default=None, metadata={"env": env, "default": default, "parse": parse, "aliases": aliases})


@dataclass(frozen=True)
class Settings:
    host: str = _setting("HOST", "127.0.0.1", _str, ("APP_HOST",))
    port: int = _setting("PORT", "7308", _int(1, 65535), ("APP_PORT",))
    log_level: str = _setting("LOG_LEVEL", "info", _log_level)
    data_dir: str = _setting("WAREST_DATA_DIR", "./data", _str)
    database_url: str = _setting("WAREST_DATABASE_URL", "", _pg_url)
    database_schema: str = _setting("WAREST_DATABASE_SCHEMA", "public", _schema)
    database_pool_size: int = _setting("WAREST_DATABASE_POOL_SIZE", "8", _int(2, 200))
    redis_url: str = _setting("WAREST_REDIS_URL", "", _redis_url)
    engine: str = _setting("WAREST_ENGINE", "neonize", _choice("neonize", "sandbox"))
    trusted_proxies: tuple[Any, ...] = _setting("WAREST_TRUSTED_PROXIES", "", _networks)
    allowed_origins: tuple[str, ...] = _setting("ALLOWED_ORIGINS", "", _origins, ("WAREST_ALLOWED_ORIGINS",))
    admin_username: str = _setting("WAREST_AUTHADMIN_USERNAME", "", _admin_username)
    admin_password: str = _setting("WAREST_AUTHADMIN_PASSWORD", "", _admin_password)
    admin_api_key: str = _setting("WAREST_ADMIN_APIKEY", "", _str)
    secret_key: str = _setting("WAREST_SECRET_KEY", "", _str)
    server_name: str = _setting("WAREST_SERVER_NAME", "Warest API", _str)
    base_url: str = _setting("WAREST_BASE_URL", "", _str, ("WAREST_PUBLIC_URL",))
    rate_limit_window_ms: int = _setting("RATE_LIMIT_WINDOW_MS", "60000", _int(1000))
    rate_limit_max: int = _setting("RATE_LIMIT_MAX", "120", _int(1))
    group_commit: bool = _setting("WAREST_GROUP_COMMIT", "true", _bool)
    group_commit_window_ms: int = _setting("WAREST_GROUP_COMMIT_WINDOW_MS", "2", _int(0, 100))
    login_max_failures: int = _setting("WAREST_LOGIN_MAX_FAILURES", "5", _int(1, 100))
    login_lock_base_s: int = _setting("WAREST_LOGIN_LOCK_SECONDS", "60", _int(1, 86400))
    docs_session_ttl_s: int = _setting("WAREST_DOCS_SESSION_TTL_SEC", "43200", _int(60))
    cookie_secure: str = _setting("WAREST_COOKIE_SECURE", "auto", _choice("auto", "true", "false"))
    default_country_code: str = _setting("WAREST_DEFAULT_COUNTRY_CODE", "62", _country_code)
    queue_concurrency: int = _setting("WAREST_QUEUE_CONCURRENCY", "1", _int(1, 64))
    queue_max_size: int = _setting("WAREST_QUEUE_MAX_SIZE", "1000", _int(0))
    queue_timeout_ms: int = _setting("WAREST_QUEUE_TIMEOUT_MS", "30000", _int(0))
    queue_max_retries: int = _setting("WAREST_QUEUE_MAX_RETRIES", "2", _int(0, 20))
    queue_retry_delay_ms: int = _setting("WAREST_QUEUE_RETRY_DELAY_MS", "521", _int(0))
    queue_backoff_factor: float = _setting("WAREST_QUEUE_BACKOFF_FACTOR", "2", _float(1.0, 10.0))
    queue_retry_jitter: float = _setting("WAREST_QUEUE_RETRY_JITTER", "0.2", _float(0.0, 1.0))
    send_wait_ms: int = _setting("WAREST_SEND_WAIT_MS", "15000", _int(0, 600000))
    idempotency_ttl_hours: int = _setting("WAREST_IDEMPOTENCY_TTL_HOURS", "24", _int(1, 8760))
    qr_duration_s: int = _setting("WAREST_QR_DURATION_SEC", "20", _int(5, 65))
    qr_max_rotations: int = _setting("WAREST_QR_MAX_ROTATIONS", "10", _int(1, 1000))
    sandbox: str = _setting("WAREST_SANDBOX_ENABLED", "auto", _choice("auto", "true", "false"))
    neonize_store: str = _setting("WAREST_NEONIZE_STORE", "", _str)
    suspend_after_s: int = _setting("WAREST_SUSPEND_AFTER_SEC", "300", _int(10, 86400))
    suspended_retry_s: int = _setting("WAREST_SUSPENDED_RETRY_SEC", "120", _int(1, 3600))
    server: str = _setting("WAREST_SERVER", "granian", _choice("granian", "uvicorn"))
    supervisor_pid: int = _setting("WAREST_SUPERVISOR_PID", "0", _int(0))
    database_embedded: bool = _setting("WAREST_DATABASE_EMBEDDED", "false", _bool)
    proxy_urls: tuple[str, ...] = _setting("WAREST_PROXY_URLS", "", _proxies)
    workers: int = _setting("WAREST_WORKERS", "1", _int(1, 64))
    projector: str = _setting("WAREST_PROJECTOR", "process", _choice("process", "inline", "external"))
    projection_interval_ms: int = _setting("WAREST_PROJECTION_INTERVAL_MS", "50", _int(0, 1000))
    startup_wait_ms: int = _setting("WAREST_STARTUP_WAIT_MS", "60000", _int(0, 3_600_000))
    shutdown_timeout_ms: int = _setting("WAREST_SHUTDOWN_TIMEOUT_MS", "4000", _int(500, 600_000))
    header_timeout_ms: int = _setting("WAREST_HEADER_TIMEOUT_MS", "10000", _int(100, 600_000))
    body_timeout_ms: int = _setting("WAREST_BODY_TIMEOUT_MS", "30000", _int(100, 600_000))
    webhooks_enabled: bool = _setting("WAREST_WEBHOOK_ENABLED", "true", _bool)
    webhook_default_url: str = _setting("WEBHOOK_DEFAULT_URL", "", _url, ("WAREST_WEBHOOK_DEFAULT_URL",))
    webhook_default_secret: str = _setting("WEBHOOK_DEFAULT_SECRET", "", _str)
    webhook_timeout_ms: int = _setting("WAREST_WEBHOOK_TIMEOUT_MS", "10000", _int(100, 120000))
    webhook_retries: int = _setting("WAREST_WEBHOOK_RETRIES", "3", _int(0, 20))
    webhook_backoff_ms: int = _setting("WAREST_WEBHOOK_BACKOFF_MS", "800", _int(1, 3600000))
    webhook_jitter_ms: int = _setting("WAREST_WEBHOOK_JITTER_MS", "300", _int(0, 600000))
    webhook_parallel_targets: bool = _setting("WAREST_WEBHOOK_PARALLEL_TARGETS", "true", _bool)
    webhook_actions_delay_ms: int = _setting("WAREST_WEBHOOK_ACTIONS_DELAY_MS", "1200", _int(0, 60000))
    webhook_preflight_timeout_ms: int = _setting(
        "WAREST_WEBHOOK_PREFLIGHT_TIMEOUT_MS", "5000", _int(100, 60000)
    )
    webhook_signature_sha2: str = _setting("WAREST_WEBHOOK_SIGNATURE_SHA2", "256", _sha2)
    webhook_allow_private: bool = _setting("WAREST_WEBHOOK_ALLOW_PRIVATE", "false", _bool)
    webhook_allow: tuple[str, ...] = _setting("WAREST_WEBHOOK_ALLOW", "", _allow)
    webhook_https_only: bool = _setting("WAREST_WEBHOOK_HTTPS_ONLY", "false", _bool)
    webhook_breaker_failures: int = _setting("WAREST_WEBHOOK_BREAKER_FAILURES", "5", _int(1, 1000))
    webhook_breaker_open_ms: int = _setting("WAREST_WEBHOOK_BREAKER_OPEN_MS", "60000", _int(1, 86400000))
    webhook_cooloff_ms: int = _setting("WAREST_WEBHOOK_COOLOFF_MS", "900000", _int(0, 86400000))
    webhook_max_in_flight: int = _setting("WAREST_WEBHOOK_MAX_IN_FLIGHT", "256", _int(1, 4096))
    webhook_connections: int = _setting("WAREST_WEBHOOK_CONNECTIONS", "8", _int(1, 1024))
    webhook_rotation_grace_s: int = _setting("WAREST_WEBHOOK_ROTATION_GRACE_SEC", "86400", _int(0, 2592000))
    webhook_command_prefixes: tuple[str, ...] = _setting(
        "WAREST_WEBHOOK_COMMAND_PREFIXES", "/,!,.", _prefixes
    )

    def __post_init__(self) -> None:
        if self.webhook_default_url and len(self.webhook_default_secret) < 24:
            raise ConfigError(
                "WEBHOOK_DEFAULT_SECRET",
                "must have at least 24 characters when WEBHOOK_DEFAULT_URL is set (no built-in default)",
            )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv: str | Path | None = ".env"
    ) -> Settings:
        env: dict[str, str] = {}
        if dotenv is not None and Path(dotenv).is_file():
            from dotenv import dotenv_values  # noqa: PLC0415

            env.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
        env.update(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            meta = f.metadata
            raw = env.get(meta["env"])
            if raw is None:
                raw = next((env[a] for a in meta["aliases"] if a in env), meta["default"])
            values[f.name] = meta["parse"](meta["env"], raw)
        return cls(**values)

    def described(self) -> list[tuple[str, str, str]]:
        """(variable, effective value with secrets masked, default) for ``config check``."""
        rows = []
        for f in fields(self):
            name = f.metadata["env"]
            value = getattr(self, f.name)
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            if name in SECRET_NAMES and shown:
                shown = _mask(name, shown)
            rows.append((name, shown, f.metadata["default"]))
        return rows

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def sandbox_enabled(self) -> bool:
        return self.sandbox == "true" or (self.sandbox == "auto" and self.engine == "sandbox")

    @property
    def embedded_database(self) -> bool:
        """The embedded server is in use (started here, or by ``warest serve`` for its workers)."""
        return not self.database_url or self.database_embedded


def _mask(name: str, value: str) -> str:
    if name.endswith("_URL"):
        parsed = urlparse(value)
        if parsed.password:
            return value.replace(f":{parsed.password}@", ":****@")
        return value
    return "****"
