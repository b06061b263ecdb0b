"""The Telegram bot of the music recommender: talks to recsys only through bot.service.MusicService."""
