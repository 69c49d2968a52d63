"""Configuration: defaults, aliases, validation naming the variable, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from warest.config import ConfigError, Settings


def test_defaults() -> None:
    settings = Settings.from_env({}, dotenv=None)
    assert (settings.host, settings.port) == ("127.0.0.1", 7308)
    assert settings.embedded_database and settings.engine == "neonize"
    assert settings.rate_limit_max == 120 and settings.rate_limit_window_ms == 60000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "http"),
        ("PORT", "70000"),
        ("WAREST_ENGINE", "baileys"),
        ("WAREST_DATABASE_URL", "mysql://x"),
        ("ALLOWED_ORIGINS", "not an origin"),
        ("WAREST_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("RATE_LIMIT_WINDOW_MS", "10"),
        ("WAREST_GROUP_COMMIT", "maybe"),
        ("LOG_LEVEL", "verbose"),
        ("WAREST_DATABASE_SCHEMA", "drop table;"),
    ],
)
def test_a_wrong_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({name: value}, dotenv=None)
    assert error.value.name == name and name in str(error.value)


def test_aliases_and_parsing() -> None:
    settings = Settings.from_env(
        {
            "APP_PORT": "9000",
            "WAREST_ALLOWED_ORIGINS": "https://a.example/path, http://b.example:81",
            "WAREST_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16",
            "LOG_LEVEL": "warn",
        },
        dotenv=None,
    )
    assert settings.port == 9000
    assert settings.allowed_origins == ("https://a.example", "http://b.example:81")
    assert len(settings.trusted_proxies) == 2 and settings.log_level == "warning"
    assert Settings.from_env({"PORT": "1", "APP_PORT": "2"}, dotenv=None).port == 1  # the main name wins


def test_dotenv_is_read_and_environment_wins(tmp_path: object) -> None:
    path = Path(str(tmp_path)) / ".env"
    path.write_text("PORT=8100\nWAREST_SERVER_NAME=From dotenv\n")
    settings = Settings.from_env({"PORT": "8200"}, dotenv=path)
    assert settings.port == 8200 and settings.server_name == "From dotenv"


def test_described_masks_secrets() -> None:
    settings = Settings.from_env(
        {
            "WAREST_ADMIN_APIKEY": "supersecretkey",
            "WAREST_AUTHADMIN_PASSWORD": "pw-secret",
            "WAREST_DATABASE_URL": "postgresql://u:dbpass@h/db",
            "WAREST_SECRET_KEY": "pepper",
        },
        dotenv=None,
    )
    text = repr(settings.described())
    for secret in ("supersecretkey", "pw-secret", "dbpass", "pepper"):
        assert secret not in text
    rows = dict((name, value) for name, value, _ in settings.described())
    assert rows["WAREST_DATABASE_URL"] == "postgresql://u:****@h/db"
    assert rows["WAREST_ADMIN_APIKEY"] == "****"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WAREST_AUTHADMIN_USERNAME", "a b"),
        ("WAREST_AUTHADMIN_PASSWORD", "short"),
        ("WAREST_DATABASE_SCHEMA", "Mixed"),
    ],
)
def test_admin_and_schema_values_are_checked_before_start(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({name: value}, dotenv=None)
    assert error.value.name == name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WAREST_WEBHOOK_SIGNATURE_SHA2", "md5"),
        ("WAREST_WEBHOOK_RETRIES", "-1"),
        ("WAREST_WEBHOOK_TIMEOUT_MS", "5"),
        ("WAREST_WEBHOOK_ALLOW", "10.0.0.0/33"),
        ("WAREST_WEBHOOK_ALLOW", "bad host!"),
        ("WEBHOOK_DEFAULT_URL", "ftp://x"),
        ("WAREST_WEBHOOK_COMMAND_PREFIXES", "/,toolong"),
    ],
)
def test_a_wrong_webhook_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({name: value}, dotenv=None)
    assert error.value.name == name


def test_webhook_settings() -> None:
    settings = Settings.from_env(
        {
            "WAREST_WEBHOOK_SIGNATURE_SHA2": "SHA-512",
            "WAREST_WEBHOOK_ALLOW": "10.0.0.0/8, hooks.internal",
            "WAREST_WEBHOOK_DEFAULT_URL": "https://hooks.example.com/all",
            "WEBHOOK_DEFAULT_SECRET": "x" * 24,
        },
        dotenv=None,
    )
    assert settings.webhook_signature_sha2 == "512"
    assert settings.webhook_allow == ("10.0.0.0/8", "hooks.internal")
    assert settings.webhook_default_url == "https://hooks.example.com/all"
    assert settings.webhook_command_prefixes == ("/", "!", ".")
    shown = {name: value for name, value, _ in settings.described()}
    assert shown["WEBHOOK_DEFAULT_SECRET"] == "****"


def test_a_default_webhook_url_needs_a_real_secret() -> None:
    """The original fell back to the literal secret "supersecret"."""
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"WEBHOOK_DEFAULT_URL": "https://hooks.example.com/x"}, dotenv=None)
    assert error.value.name == "WEBHOOK_DEFAULT_SECRET"
    with pytest.raises(ConfigError):
        Settings.from_env(
            {"WEBHOOK_DEFAULT_URL": "https://hooks.example.com/x", "WEBHOOK_DEFAULT_SECRET": "supersecret"},
            dotenv=None,
        )
