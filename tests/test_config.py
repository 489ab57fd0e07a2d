"""Configuration from the environment and flags: defaults, parsing, and errors naming the variable."""

from __future__ import annotations

import argparse

import pytest

from flowengine.config import SETTINGS, Config, ConfigError, add_arguments, load_config


def flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults():
    config = load_config({})
    assert config == Config()
    assert (config.host, config.port, config.bind_address) == ("0.0.0.0", 3000, "0.0.0.0:3000")
    assert config.log_level == "info"
    assert config.db == "flowengine.db"
    assert config.max_body_bytes == 16 * 1024 * 1024


def test_every_setting_has_a_variable_and_a_flag():
    for setting in SETTINGS:
        assert setting.flag.startswith("--")
        assert setting.env in ("BIND_ADDRESS", "LOG_LEVEL") or setting.env.startswith("FLOWENGINE_")
    assert {"BIND_ADDRESS", "LOG_LEVEL", "FLOWENGINE_DB", "FLOWENGINE_MAX_BODY_BYTES"} <= {s.env for s in SETTINGS}


@pytest.mark.parametrize(
    "text, host, port, shown",
    [
        ("127.0.0.1:8080", "127.0.0.1", 8080, "127.0.0.1:8080"),
        ("[::1]:3000", "::1", 3000, "[::1]:3000"),
        ("[::]:80", "::", 80, "[::]:80"),
        ("localhost:0", "localhost", 0, "localhost:0"),
    ],
)
def test_bind_address(text, host, port, shown):
    config = load_config({"BIND_ADDRESS": text})
    assert (config.host, config.port, config.bind_address) == (host, port, shown)


@pytest.mark.parametrize("text", ["3000", ":3000", "localhost", "localhost:http", "1.2.3.4:70000", "::1:3000", "host:-1"])
def test_bad_bind_address_names_the_variable(text):
    with pytest.raises(ConfigError) as raised:
        load_config({"BIND_ADDRESS": text})
    message = str(raised.value)
    assert message.startswith(f"invalid BIND_ADDRESS={text!r}: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    "text, level",
    [("error", "error"), ("warn", "warn"), ("WARNING", "warn"), ("Info", "info"), ("debug", "debug"), ("trace", "trace")],
)
def test_log_level(text, level):
    assert load_config({"LOG_LEVEL": text}).log_level == level


def test_rust_log_is_the_fallback():
    assert load_config({"RUST_LOG": "debug"}).log_level == "debug"
    assert load_config({"RUST_LOG": "flowengine=trace,hyper=warn"}).log_level == "trace"
    assert load_config({"RUST_LOG": "hyper=warn,flowengine=debug"}).log_level == "debug"
    assert load_config({"RUST_LOG": "info,flowengine=debug"}).log_level == "debug"
    assert load_config({"RUST_LOG": "hyper=trace,warn"}).log_level == "warn"
    assert load_config({"RUST_LOG": "debug", "LOG_LEVEL": "error"}).log_level == "error"


def test_bad_log_level_names_the_variable():
    with pytest.raises(ConfigError, match=r"^invalid LOG_LEVEL='loud': expected one of error, warn, info, debug, trace$"):
        load_config({"LOG_LEVEL": "loud"})
    with pytest.raises(ConfigError, match=r"^invalid RUST_LOG='loud'"):
        load_config({"RUST_LOG": "loud"})


def test_db_and_body_limit():
    config = load_config({"FLOWENGINE_DB": ":memory:", "FLOWENGINE_MAX_BODY_BYTES": "1000"})
    assert (config.db, config.max_body_bytes) == (":memory:", 1000)
    assert load_config({"FLOWENGINE_MAX_BODY_BYTES": "1_048_576"}).max_body_bytes == 1048576


@pytest.mark.parametrize("text", ["abc", "0", "-5", "1.5", ""])
def test_bad_body_limit_names_the_variable(text):
    with pytest.raises(ConfigError) as raised:
        load_config({"FLOWENGINE_MAX_BODY_BYTES": text})
    assert str(raised.value).startswith(f"invalid FLOWENGINE_MAX_BODY_BYTES={text!r}: ")


def test_empty_db_is_refused():
    with pytest.raises(ConfigError, match=r"^invalid FLOWENGINE_DB=''"):
        load_config({"FLOWENGINE_DB": ""})


def test_flags_win_over_the_environment():
    environ = {"BIND_ADDRESS": "127.0.0.1:1", "LOG_LEVEL": "error", "FLOWENGINE_DB": "env.db"}
    config = load_config(environ, flags("--bind", "[::1]:4000", "--log-level", "debug", "--db", "flag.db"))
    assert (config.host, config.port, config.log_level, config.db) == ("::1", 4000, "debug", "flag.db")
    # Flags left out fall back to the environment.
    config = load_config(environ, flags("--db", "flag.db"))
    assert (config.port, config.log_level, config.db) == (1, "error", "flag.db")


def test_bad_flag_names_the_flag():
    with pytest.raises(ConfigError, match=r"^invalid --max-body-bytes='lots'"):
        load_config({}, flags("--max-body-bytes", "lots"))
