"""Frozen configuration dataclasses, one per component; every default says why it is what it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

ModelKind = Literal["hybrid", "design_gcn"]
# Where training runs (recsys.device): "auto" takes a CUDA GPU when torch sees one, else the CPU.
DeviceName = Literal["auto", "cpu", "cuda"]
DEVICE_NAMES: tuple[str, ...] = get_args(DeviceName)


@dataclass(frozen=True)
class DataConfig:
    """How a playlist CSV becomes a catalogue."""

    # Rows missing a title or artist are kept (the track still has features and edges) and shown with this.
    placeholder_name: str = "(untitled)"
    placeholder_artist: str = "(unknown artist)"
    # Track, artist, album and playlist names are cut to this many characters at load: a name's memory (and a
    # snapshot's size) then stays bounded whatever one cell holds. The longest name in the real data has 151
    # characters and a Telegram button shows about 60, so 200 cuts no real name.
    max_name_length: int = 200
    # Rows whose track_id, playlist_id or track_album_id is longer are skipped (an id cannot be cut: cut ids could
    # collide). Spotify ids have 22 characters; 64 leaves room for other catalogues' ids.
    max_id_length: int = 64


@dataclass(frozen=True)
class ModelConfig:
    """The graph neural network: which architecture and its sizes."""

    # "hybrid": the product model, a LightGCN-style propagation over playlist, track, artist and album nodes
    # with track inputs built from audio features, genre, year and popularity (inductive, so cold tracks get
    # embeddings). "design_gcn": the original two-layer GCNConv design, kept as a baseline.
    kind: ModelKind = "hybrid"
    # 64 dimensions hold ~500 playlists and ~10k artists comfortably; larger was not better on validation.
    embedding_dim: int = 64
    # Three hops reach playlist -> track -> artist -> other tracks of the artist: the cold-start path.
    num_layers: int = 3
    # Dropout on the track input encoder; the catalogue is small and overfits quickly without it.
    dropout: float = 0.1
    # design_gcn only: hidden width of the first GCNConv layer (the original design used 128 then 64).
    hidden_dim: int = 128
    # design_gcn only: the original design fed playlists fixed random features; the product learns them.
    learn_playlist_embeddings: bool = True
    # design_gcn only: the original design min-max scaled audio features; we standardise by default.
    feature_scaling: Literal["standard", "minmax"] = "standard"
    # hybrid only: whether artist and album nodes join the graph (the main cold-start signal).
    use_artist_album_nodes: bool = True


@dataclass(frozen=True)
class LossConfig:
    """The ranking objective."""

    # "softmax": sampled softmax over negatives, a stronger ranking loss than BPR on implicit feedback.
    # "bce": the original design's binary cross entropy on positive and random negative edges.
    kind: Literal["softmax", "bpr", "bce"] = "softmax"
    # Negatives drawn for each positive separately (the design's BCE uses one).
    num_negatives: int = 8
    # Share of the per-positive negatives drawn from the positive's own genre: harder negatives.
    hard_share: float = 1.0
    # softmax only: uniform negatives shared by the whole batch; many negatives for one matrix product.
    # 1024 validated as well as 2048 (inner split of the real data) at half the cost.
    num_shared_negatives: int = 1024
    # Softmax temperature on cosine-like scores; 0.1 keeps gradients alive on a normalised space.
    temperature: float = 0.1
    # L2 on the input embeddings, as in LightGCN.
    weight_decay: float = 1e-5
    # softmax only: a sampled negative that is in the positive's own training playlist is left out (a same-genre
    # draw often is); the original design's BCE keeps its random negatives as they were.
    skip_playlist_members: bool = True
    # softmax only: the shared-negative block's products in bfloat16 where the hardware multiplies it natively
    # (recsys.loss.fast_bf16: CUDA, CPUs with AVX512-BF16 or AMX), float32 elsewhere; sums stay float32. At 10M
    # pairs the block is most of an epoch; bench/compare_training.py measured the validation cost (see docs/scale.md).
    bf16_shared_products: bool = True
    # Weight of the co-member term (recsys.co_members): another song of the positive's playlist as the query
    # instead of the playlist, aimed at new playlists from seed songs (ranked by track-to-track cosines). Off: it
    # did not lift them. bench/compare_training.py, real data, inner validation split, 3 seeds, against 0: at 0.3
    # new playlists -3.6%, similar songs' cold P@10 +1.3%, cold continuation +2.0%, warm continuation -9.6%, training
    # +21%; at 1.0 -4.1%, +2.1%, +4.2%, -15.9%, +70%.
    co_member_weight: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """The training loop, and the model and loss it trains."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    # Fixed seed: training is reproducible run to run on the same machine.
    seed: int = 42
    # Upper bound; early stopping usually ends sooner.
    epochs: int = 100
    # 0.02 converges in ~30-50 epochs on the real data with the same validation recall as 0.01 in ~80.
    learning_rate: float = 0.02
    # Target edges per optimisation step, and per chunk of the loss; the real data has ~13k targets per epoch,
    # so one step per epoch.
    batch_size: int = 16384
    # Each step propagates over the whole graph and back (seconds at 10M pairs on 2 cores), so on large catalogues
    # an epoch makes at most this many steps, each over a batch of targets/max_steps_per_epoch computed in chunks
    # of batch_size (bounded memory); catalogues under ~130k pairs (the real data) are unaffected.
    max_steps_per_epoch: int = 4
    # Share of edges held out of message passing and training to pick the best epoch.
    validation_share: float = 0.1
    # Share of the training edges that each epoch removes from message passing and uses as targets: the
    # model then learns to score a track from the rest of the graph, as it must for cold tracks.
    target_edge_share: float = 0.5
    # Probability that a track with no message-passing edge in a training step has its genre hidden. Genres are
    # playlist labels, so a truly new track usually has none; 1.0 makes the model never lean on them for cold ones.
    genre_dropout: float = 1.0
    # What early stopping maximises (recsys.train_progress.stopping_score): "held_out_pairs", Recall@eval_k of random
    # held-out pairs; or "product", the mean of the Recall@eval_k of held-out pairs whose track is cold and of new
    # playlists continued from 5 seed tracks: what the product mostly serves. bench/compare_training.py, real data,
    # 3 seeds, "product" against "held_out_pairs": similar-songs cold P@10 +1.6%, new playlists +0.8%, cold
    # continuation +1.0%, warm continuation -6.5% (one seed of three chose another epoch; the other two the same).
    early_stopping: Literal["held_out_pairs", "product"] = "product"
    # Stop after this many epochs without a better validation score.
    patience: int = 10
    # Validate every this many epochs (validation ranks the whole catalogue).
    eval_every: int = 2
    # Cutoff of the validation metric (Recall@k over held-out edges).
    eval_k: int = 20
    # Validation ranks the whole catalogue for at most this many held-out playlists (a seeded sample); the
    # real data has ~470, a 10M-pair catalogue ~28k.
    eval_max_playlists: int = 2000
    # Wall-clock budget: past it, training stops and keeps its best validated epoch (a retrain on a busy machine
    # then still finishes in bounded time). The real data needs well under a minute; `make bench` measures it.
    max_seconds: float = 110.0
    # Show a tqdm progress bar with the loss.
    progress: bool = True
    # Where the training tensors live: "cpu", "cuda" (a GPU, or an error) or "auto" (a GPU when there is one). The
    # GPU path was written and tested on CPU only: no GPU was available to the sessions that built it, so the
    # product trains where it was measured unless asked otherwise. Serving is always on CPU.
    device: DeviceName = "cpu"
