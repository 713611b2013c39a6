"""The settings of dynamic registration: defaults, parsing, a bad value named."""

from __future__ import annotations

import pytest

from entrypoints.settings import ConfigError, load_settings


def test_registration_is_off_and_limited_by_default() -> None:
    settings = load_settings({})
    assert settings.client_registration == "off"
    assert settings.rate_limit_registration_per_minute == 10


def test_registration_settings_parse() -> None:
    settings = load_settings({"CLIENT_REGISTRATION": "token",
                              "RATE_LIMIT_REGISTRATION_PER_MINUTE": "0"})
    assert settings.client_registration == "token"
    assert settings.rate_limit_registration_per_minute == 0


@pytest.mark.parametrize(("variable", "value"), [
    ("CLIENT_REGISTRATION", "sometimes"), ("RATE_LIMIT_REGISTRATION_PER_MINUTE", "-1"),
    ("RATE_LIMIT_REGISTRATION_PER_MINUTE", "ten"),
])
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings({variable: value})
