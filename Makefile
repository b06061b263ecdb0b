# The two commands a user needs: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Real-data tests run when this points at spotify_songs.csv (CI points it at ../shared/data).
MUSICREC_REAL_DATA ?=

.PHONY: run test lint bench bench-listeners bench-scale bench-scale-mpd evaluate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: a bare "torch" requirement would otherwise pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0" || $(BIN)/pip install --quiet "torch>=2.3" --index-url https://download.pytorch.org/whl/cpu
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot

test: $(STAMP)
	$(BIN)/ruff check recsys bot tests bench
	$(BIN)/mypy
	@echo "Running the test suite: about 5 minutes on 2 cores (one line of progress per test file)."
	MUSICREC_REAL_DATA="$(MUSICREC_REAL_DATA)" $(BIN)/python -m pytest -ra --timeout=900

lint: $(STAMP)
	$(BIN)/ruff check recsys bot tests bench
	$(BIN)/ruff format --check recsys bot tests bench
	$(BIN)/mypy

# Benchmarks: core (training, load, query latency) and the bot's reply latency. BENCH_DATA defaults to the
# real CSV when present, else the demo catalogue.
BENCH_DATA ?= $(if $(wildcard data/spotify_songs.csv),data/spotify_songs.csv,data/demo_songs.csv)
bench: $(STAMP)
	$(BIN)/python bench/bench_core.py --data $(BENCH_DATA) --out docs/speed.md
	$(BIN)/python bench/bench_bot.py --data $(BENCH_DATA) --out docs/bot_latency.md
	$(BIN)/python bench/bench_resolve.py --data $(BENCH_DATA) --out docs/resolve.md
	$(BIN)/python bench/quote_reports.py README.md

# Simulated listeners on held-out playlists: hit rate of /forme with and without feedback, before and after a
# retrain with listener nodes (~3 min on the real data): docs/listeners.md.
bench-listeners: $(STAMP)
	$(BIN)/python bench/bench_listeners.py --data $(BENCH_DATA) --out docs/listeners.md
	$(BIN)/python bench/quote_reports.py README.md

# Growth with catalogue size (100k, 1M, 10M pairs: ~15 min, ~9 GB RAM): docs/scale.md and its log-log plots; then
# serving at 100k and 1M tracks (ANN, name pre-filter, event-loop stall): docs/scale_serving.md.
bench-scale: $(STAMP)
	$(BIN)/python bench/bench_scale.py --out docs/scale.md
	$(BIN)/python bench/bench_scale_serving.py --out docs/scale_serving.md
	$(BIN)/python bench/quote_reports.py README.md

# The Million Playlist Dataset's size measured on this machine (10M and 66M pairs, 2 epochs; ~50 min, peak ~22 GB RAM,
# ~4 GB of generated Parquet in data/scale, generated once in ~7 min): docs/scale_mpd.md.
bench-scale-mpd: $(STAMP)
	$(BIN)/python bench/bench_scale.py --sizes 10000000 66000000 --epochs 2 --out docs/scale_mpd.md
	$(BIN)/python bench/quote_reports.py README.md

evaluate: $(STAMP)
	$(BIN)/musicrec evaluate --data $(BENCH_DATA) --report docs/quality.md
	$(BIN)/python bench/quote_reports.py README.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
