"""The listeners' database: ratings, requests and shown tracks behind one RatingStore, migrated at open."""

from bot.db.engine import StoreConfig
from bot.db.errors import StoreError
from bot.db.store import Rated, RatingStore, Request

__all__ = ["Rated", "RatingStore", "Request", "StoreConfig", "StoreError"]
