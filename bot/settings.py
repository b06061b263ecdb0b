"""Bot settings from the environment and `.env`: every knob of the bot, validated once at start-up."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

import recsys

DEFAULT_API_BASE_URL = "https://api.telegram.org/bot"
WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")  # Telegram's rule for setWebhook's secret_token


class BotSettings(BaseSettings):
    """Everything the bot reads from MUSICREC_* variables (or `.env`); the token is a secret and never printed."""

    model_config = SettingsConfigDict(
        env_prefix="MUSICREC_",
        env_file=".env",
        env_file_encoding="utf-8",
        # `.env` is shared with the recsys CLI; its keys must not break the bot.
        extra="ignore",
        # `MUSICREC_RETRAIN_INTERVAL_MINUTES=` (as in .env.example) means "unset", not "invalid".
        env_ignore_empty=True,
        frozen=True,
        populate_by_name=True,
        # A validation error must not echo what was given: for the token and the webhook secret that is the secret.
        hide_input_in_errors=True,
    )

    # The BotFather token. Unset: `python -m bot` opens the terminal chat instead of connecting to Telegram.
    bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("MUSICREC_BOT_TOKEN", "TELEGRAM_BOT_TOKEN", "bot_token")
    )
    # Telegram user ids allowed to /retrain and see /status; comma separated. Empty: nobody is admin.
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    # The playlist CSV the model is trained on (shared with the recsys CLI, hence MUSICREC_DATA).
    data: Path = Path("data/spotify_songs.csv")
    # Where the serving snapshot lives; a retrain saves here atomically and keeps the previous one.
    model_dir: Path = Path("models/current")
    # Scheduled retraining: an interval in minutes or a crontab line (not both). Neither: only /retrain.
    retrain_interval_minutes: float | None = Field(default=None, gt=0)
    retrain_cron: str | None = None
    # A training run longer than this is killed and reported as failed; the real data takes under a minute.
    retrain_timeout_minutes: float = Field(default=30.0, gt=0)
    # Training's own time budget: past it, training stops and keeps its best validated epoch. Unset: the library's
    # default (TrainConfig.max_seconds, 110 s), plenty for the real data; millions of pairs need more.
    train_budget_minutes: float | None = Field(default=None, gt=0)
    # Where a retrain runs: cpu, cuda (a GPU; without one the retrain fails with a one-line error) or auto (a GPU when
    # torch sees one). The library's default is cpu: where training was measured.
    train_device: recsys.DeviceName = "cpu"
    # A new model is swapped in only if each named metric is at least this value, e.g. {"val_recall@20": 0.05};
    # the names are those training records (recsys.metric_names()), checked at start-up.
    retrain_min_metrics: dict[str, float] = Field(default_factory=dict)
    # Listeners' ratings, requests and history: an SQLite file by default (WAL, created with its folder); a
    # PostgreSQL URL (postgresql+psycopg://...) works with the same code. Migrated at every start.
    db_url: str = "sqlite:///data/musicrec.db"
    # A listener with at least this many likes joins the graph at the next retrain (fewer say little about a taste).
    listener_min_likes: int = Field(default=5, ge=1)
    # The schedule also retrains when this many ratings arrived since the serving model was trained (0: only when
    # the data file changed). 50 ratings are a few listeners' worth of taste: enough to be worth a retrain.
    retrain_min_new_ratings: int = Field(default=50, ge=0)
    # Bot API server; change it for a self-hosted Bot API server or the tests' fake server.
    bot_api_base_url: str = DEFAULT_API_BASE_URL
    # Webhook mode when set (the public HTTPS URL Telegram posts to); otherwise long polling.
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, gt=0, lt=65536)
    # What Telegram sends in X-Telegram-Bot-Api-Secret-Token, so forged posts are refused. Unset: a new one is
    # generated at every start (setWebhook registers it), which is as safe; set it to keep it across restarts.
    webhook_secret: SecretStr | None = None
    # Per-user limit on searches: a burst of this many, refilled at requests_per_minute.
    user_burst: int = Field(default=5, ge=1)
    user_requests_per_minute: float = Field(default=20.0, gt=0)
    # Outgoing flood control: Telegram allows ~30 messages per second per bot; 429s are retried this many times.
    global_messages_per_second: float = Field(default=30.0, gt=0)
    flood_max_retries: int = Field(default=3, ge=0)
    # Updates handled at once; queries run in threads so a slow one does not hold up the others.
    concurrent_updates: int = Field(default=32, ge=1)
    log_level: str = "INFO"

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        """Accept "1, 2,3" as well as a list."""
        if isinstance(value, str):
            parts = [p for p in value.replace(";", ",").split(",") if p.strip()]
            try:
                return frozenset(int(p) for p in parts)
            except ValueError as exc:
                raise ValueError(f"MUSICREC_ADMIN_IDS must be comma-separated numeric user ids, got {value!r}") from exc
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("retrain_cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        """Reject a crontab line APScheduler cannot read at start-up, not at the first run."""
        if value is None or not value.strip():
            return None
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"MUSICREC_RETRAIN_CRON must be a 5-field crontab line like '0 4 * * *': {exc}") from exc
        return value.strip()

    @field_validator("bot_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        """An empty MUSICREC_BOT_TOKEN= line in `.env` means no token."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _check_webhook_secret(cls, value: Any) -> Any:
        """Telegram's rule for secret_token, checked here rather than by a failing setWebhook at start-up."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(raw, str) and not raw.strip():
            return None
        if isinstance(raw, str) and not WEBHOOK_SECRET_RE.fullmatch(raw):
            problem = f"it has {len(raw)}" if len(raw) > 256 else "it has other characters"
            raise ValueError(
                f"MUSICREC_WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ - (Telegram's rule), {problem}; "
                "leave it empty to generate one per run"
            )
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> BotSettings:
        if self.retrain_interval_minutes is not None and self.retrain_cron is not None:
            raise ValueError("set MUSICREC_RETRAIN_INTERVAL_MINUTES or MUSICREC_RETRAIN_CRON, not both")
        return self

    @model_validator(mode="after")
    def _known_metrics(self) -> BotSettings:
        """A floor on a metric training never records would reject every retrain, silently."""
        known = recsys.metric_names(self.train_config())
        unknown = sorted(set(self.retrain_min_metrics) - set(known))
        if unknown:
            raise ValueError(
                f"MUSICREC_RETRAIN_MIN_METRICS names unknown metrics {', '.join(map(repr, unknown))}; "
                f"training records: {', '.join(known)}"
            )
        return self

    def train_config(self) -> recsys.TrainConfig | None:
        """What a retrain trains with (None: the library's defaults)."""
        if self.train_budget_minutes is None and self.train_device == "cpu":
            return None
        minutes = self.train_budget_minutes
        budget = recsys.TrainConfig().max_seconds if minutes is None else minutes * 60
        return recsys.TrainConfig(progress=False, max_seconds=budget, device=self.train_device)

    def is_admin(self, user_id: int | None) -> bool:
        """Whether this Telegram user may run admin commands."""
        return user_id is not None and user_id in self.admin_ids

    def schedule_text(self) -> str:
        """The retrain schedule in words, for /status."""
        if self.retrain_interval_minutes is not None:
            return f"every {self.retrain_interval_minutes:g} min"
        if self.retrain_cron is not None:
            return f"cron '{self.retrain_cron}'"
        return "not scheduled"
