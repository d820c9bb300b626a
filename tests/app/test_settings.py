import os
import subprocess
import sys

import pytest

from app.settings import ENVIRONMENT_VARIABLES, FeedMode, Secret, Settings, SettingsError


def test_defaults_follow_the_design() -> None:
    settings = Settings.from_env({})
    assert settings.mongo_url is None
    assert settings.mongo_db == "agentstream"
    assert settings.sse_feed is FeedMode.AUTO
    assert (settings.sse_poll_interval, settings.sse_batch_size) == (0.5, 100)
    assert (settings.sse_timeout, settings.sse_heartbeat) == (300.0, 15.0)
    assert (settings.event_retention_days, settings.message_retention_days) == (7, 30)
    assert (settings.worker_concurrency, settings.job_time_limit) == (4, 600.0)
    assert settings.port == 8000


def test_every_design_variable_is_read() -> None:
    design = {
        "MONGO_URL", "MONGO_DB", "REDIS_URL", "SSE_FEED", "SSE_POLL_INTERVAL", "SSE_BATCH_SIZE",
        "SSE_TIMEOUT", "SSE_HEARTBEAT", "EVENT_RETENTION_DAYS", "MESSAGE_RETENTION_DAYS",
        "WORKER_CONCURRENCY", "JOB_TIME_LIMIT", "PORT", "HOST", "LOG_LEVEL",
    }  # fmt: skip
    assert design <= set(ENVIRONMENT_VARIABLES)


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {"SSE_FEED": "poll", "SSE_POLL_INTERVAL": "0.2", "SSE_BATCH_SIZE": "50", "PORT": "9000"}
    )
    assert settings.sse_feed is FeedMode.POLL
    assert settings.sse_poll_interval == 0.2
    assert settings.sse_batch_size == 50
    assert settings.port == 9000


@pytest.mark.parametrize(
    ("variable", "value", "accepts"),
    [
        ("SSE_POLL_INTERVAL", "-1", "a number > 0.0"),
        ("SSE_POLL_INTERVAL", "nan", "a number > 0.0"),
        ("SSE_BATCH_SIZE", "abc", "a whole number >= 1"),
        ("SSE_BATCH_SIZE", "0", "a whole number >= 1"),
        ("MONGO_URL", "http://db:27017", "mongodb://"),
        ("REDIS_URL", "localhost:6379", "redis://"),
        ("SSE_FEED", "sometimes", "auto or change_stream or poll"),
        ("LOG_LEVEL", "LOUD", "DEBUG"),
        ("MIGRATE_ON_STARTUP", "perhaps", "true or false"),
        ("PORT", "70000", "<= 65535"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_it_accepts(
    variable: str, value: str, accepts: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}=")
    assert accepts in message
    assert "\n" not in message


def test_secrets_never_show() -> None:
    settings = Settings.from_env(
        {
            "MONGO_URL": "mongodb://user:hunter2@db:27017/?replicaSet=rs0",
            "REDIS_URL": "redis://:hunter2@cache:6379/0",
            "OPENAI_API_KEY": "sk-hunter2",
        }
    )
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.describe())
    assert settings.describe()["mongo_url"] == "mongodb://user:***@db:27017/?replicaSet=rs0"
    assert settings.mongo_url == Secret("mongodb://user:hunter2@db:27017/?replicaSet=rs0")


def test_startup_stops_with_one_clear_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        env={"SSE_BATCH_SIZE": "abc", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "error: SSE_BATCH_SIZE='abc' is invalid: SSE_BATCH_SIZE accepts a whole number >= 1 and"
        " <= 10000"
    ]


def test_api_workers_is_a_count_or_auto() -> None:
    assert Settings.from_env({}).api_workers == 1
    assert Settings.from_env({"API_WORKERS": "3"}).api_workers == 3
    usable = len(os.sched_getaffinity(0))
    assert Settings.from_env({"API_WORKERS": "auto"}).api_workers == usable
    assert Settings.from_env({"API_WORKERS": "AUTO"}).api_workers == usable
    for bad in ("0", "-1", "1.5", "many", "257"):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({"API_WORKERS": bad})
        assert str(caught.value) == (
            f"API_WORKERS={bad!r} is invalid: API_WORKERS accepts `auto` or a whole number"
            " from 1 to 256"
        )
