"""Webhook settings: file/env/flag like the other settings, validated at start-up."""

from __future__ import annotations

import argparse

import pytest

from relayroom.signaling.cli import build_parser, config_from_args
from relayroom.signaling.config import ConfigError, load_config
from relayroom.signaling.webhook_signing import derive_key
from relayroom.signaling.webhooks import webhook_settings
from tests.conftest import TEST_SECRET


def test_urls_come_from_the_environment_as_a_comma_separated_list():
    env = {"RELAYROOM_WEBHOOK_URLS": "https://a.example/hook, http://127.0.0.1:9000/x"}
    config = load_config(env=env)
    assert config.webhook_urls == ("https://a.example/hook", "http://127.0.0.1:9000/x")


def test_the_serve_flag_is_repeatable_and_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("RELAYROOM_WEBHOOK_URLS", "https://env.example/hook")
    args: argparse.Namespace = build_parser().parse_args(
        ["serve", "--webhook-url", "https://a.example/1", "--webhook-url", "https://b.example/2"]
    )
    config = config_from_args(args)
    assert config.webhook_urls == ("https://a.example/1", "https://b.example/2")


@pytest.mark.parametrize(
    "url, why",
    [
        ("ftp://a.example/hook", "not an http(s) URL"),
        ("a.example/hook", "not an http(s) URL"),
        ("https:///hook", "not an http(s) URL"),
        ("http://a.example:99999/hook", "invalid port"),
    ],
)
def test_a_url_that_is_not_http_is_refused_with_its_setting_named(url, why):
    with pytest.raises(ConfigError, match="webhook_urls") as caught:
        load_config(env={}, overrides={"webhook_urls": (url,)})
    assert why in str(caught.value)


def test_a_short_webhook_key_is_refused():
    with pytest.raises(ConfigError, match=r"webhook_key.*at least 32"):
        load_config(env={"RELAYROOM_WEBHOOK_KEY": "short"})


def test_the_key_is_the_configured_one_or_derived_from_the_api_secret():
    config = load_config(env={})
    assert webhook_settings(config, TEST_SECRET).key == derive_key(TEST_SECRET)
    own = "w" * 40
    config = load_config(env={"RELAYROOM_WEBHOOK_KEY": own, "RELAYROOM_WEBHOOK_QUEUE_MAX": "7"})
    settings = webhook_settings(config, TEST_SECRET)
    assert settings.key == own and settings.queue_max == 7
    assert own not in repr(settings) and "***" in str(config.redacted()["webhook_key"])


@pytest.mark.parametrize(
    "name, value",
    [
        ("RELAYROOM_WEBHOOK_TIMEOUT_S", "0"),
        ("RELAYROOM_WEBHOOK_RETRY_BUDGET_S", "0.5"),
        ("RELAYROOM_WEBHOOK_BACKOFF_MAX_S", "0"),
        ("RELAYROOM_WEBHOOK_QUEUE_MAX", "0"),
    ],
)
def test_limits_below_their_minimum_are_refused(name, value):
    with pytest.raises(ConfigError, match="below the minimum"):
        load_config(env={name: value})
