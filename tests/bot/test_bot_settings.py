"""Settings come from MUSICREC_* variables (and .env), are validated early, and never show the token."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

import recsys
from bot.settings import BotSettings


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSICREC_BOT_TOKEN", "1:secret")
    monkeypatch.setenv("MUSICREC_ADMIN_IDS", "11, 22,33")
    monkeypatch.setenv("MUSICREC_DATA", "/tmp/songs.csv")
    monkeypatch.setenv("MUSICREC_RETRAIN_INTERVAL_MINUTES", "90")
    monkeypatch.setenv("MUSICREC_RETRAIN_MIN_METRICS", '{"val_recall@20": 0.05}')
    settings = BotSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.bot_token is not None and settings.bot_token.get_secret_value() == "1:secret"
    assert settings.admin_ids == frozenset({11, 22, 33})
    assert settings.data == Path("/tmp/songs.csv")
    assert settings.retrain_min_metrics == {"val_recall@20": 0.05}
    assert settings.schedule_text() == "every 90 min"
    assert settings.is_admin(22) and not settings.is_admin(44) and not settings.is_admin(None)


def test_telegram_bot_token_alias_and_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("TELEGRAM_BOT_TOKEN=2:from-dotenv\nMUSICREC_RETRAIN_CRON=0 4 * * *\nOTHER_TOOL_SETTING=x\n")
    settings = BotSettings(_env_file=env)  # type: ignore[call-arg]
    assert settings.bot_token is not None and settings.bot_token.get_secret_value() == "2:from-dotenv"
    assert settings.retrain_cron == "0 4 * * *"


def test_the_token_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = BotSettings(_env_file=None, bot_token=SecretStr("3:very-secret"))  # type: ignore[call-arg]
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings.model_dump())


def test_empty_token_means_terminal_mode() -> None:
    assert BotSettings(_env_file=None, bot_token="  ").bot_token is None  # type: ignore[call-arg,arg-type]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"retrain_interval_minutes": 5, "retrain_cron": "0 4 * * *"}, "not both"),
        ({"retrain_cron": "every day"}, "crontab"),
        ({"admin_ids": "12,abc"}, "numeric"),
        ({"retrain_interval_minutes": 0}, "greater than 0"),
        # Telegram accepts 1-256 characters of A-Z a-z 0-9 _ - as a webhook secret; setWebhook would fail later.
        ({"webhook_secret": "has spaces in it"}, "MUSICREC_WEBHOOK_SECRET"),
        ({"webhook_secret": "dots.are.not.allowed"}, "MUSICREC_WEBHOOK_SECRET"),
        ({"webhook_secret": "x" * 257}, "MUSICREC_WEBHOOK_SECRET"),
    ],
)
def test_bad_values_fail_at_start_up_with_a_clear_message(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BotSettings(_env_file=None, **values)  # type: ignore[arg-type,call-arg]


def test_env_example_documents_every_setting_and_parses() -> None:
    example = Path(__file__).resolve().parents[2] / ".env.example"
    text = example.read_text()
    for name in BotSettings.model_fields:
        assert f"MUSICREC_{name.upper()}=" in text, f"MUSICREC_{name.upper()} is not in .env.example"
    settings = BotSettings(_env_file=example)  # type: ignore[call-arg]
    assert settings.bot_token is None and settings.retrain_interval_minutes is None


def test_training_budget_reaches_the_retrain_config(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BotSettings(_env_file=None).train_config() is None  # type: ignore[call-arg]  # the library's defaults
    monkeypatch.setenv("MUSICREC_TRAIN_BUDGET_MINUTES", "45")
    config = BotSettings(_env_file=None).train_config()  # type: ignore[call-arg]
    assert config is not None and config.max_seconds == 2700 and not config.progress
    monkeypatch.setenv("MUSICREC_TRAIN_BUDGET_MINUTES", "0")
    with pytest.raises(ValidationError):
        BotSettings(_env_file=None)  # type: ignore[call-arg]


def test_training_device_reaches_the_retrain_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSICREC_TRAIN_DEVICE", "auto")
    config = BotSettings(_env_file=None).train_config()  # type: ignore[call-arg]
    assert config is not None and config.device == "auto"
    assert config.max_seconds == recsys.TrainConfig().max_seconds  # no budget set: the library's
    monkeypatch.setenv("MUSICREC_TRAIN_DEVICE", "gpu")
    with pytest.raises(ValidationError, match="train_device"):
        BotSettings(_env_file=None)  # type: ignore[call-arg]


def test_unknown_retrain_metric_is_refused_at_start_up_naming_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    # "recall@20" is what an older comment suggested; training records "val_recall@20", so every retrain would
    # have been rejected for a metric that never exists.
    monkeypatch.setenv("MUSICREC_RETRAIN_MIN_METRICS", '{"recall@20": 0.05}')
    with pytest.raises(ValidationError, match="MUSICREC_RETRAIN_MIN_METRICS") as caught:
        BotSettings(_env_file=None)  # type: ignore[call-arg]
    message = str(caught.value)
    assert "'recall@20'" in message
    assert all(name in message for name in recsys.metric_names())
    monkeypatch.setenv("MUSICREC_RETRAIN_MIN_METRICS", '{"val_recall@20": 0.05, "best_epoch": 1}')
    assert BotSettings(_env_file=None).retrain_min_metrics == {"val_recall@20": 0.05, "best_epoch": 1}  # type: ignore[call-arg]


def test_a_valid_webhook_secret_is_kept_and_an_empty_one_means_generate() -> None:
    secret = "A-z_09" * 40 + "abcdefghijklmnop"  # 256 characters, every allowed kind
    settings = BotSettings(_env_file=None, webhook_secret=secret)  # type: ignore[call-arg,arg-type]
    assert settings.webhook_secret is not None and settings.webhook_secret.get_secret_value() == secret
    assert BotSettings(_env_file=None, webhook_secret=" ").webhook_secret is None  # type: ignore[call-arg,arg-type]
