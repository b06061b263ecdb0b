"""Graph neural networks that embed playlists and tracks; models hold encode/score and do no I/O."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from torch_geometric.nn import GCNConv, LGConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from recsys.config import ModelConfig
from recsys.graph import GraphInputs


class _LightGCNStack(torch.autograd.Function):
    """The mean of x, adj @ x, ..., adj^layers @ x for a symmetric sparse CSR adjacency: LightGCN's layer
    combination in one autograd step, written into x (x must not be a leaf that requires grad; the model's is the
    concatenated inputs, which no backward step reads).

    Its gradient is the same polynomial in adj applied to the incoming gradient, evaluated by Horner's rule
    (h <- adj @ h + g / (L + 1)): the same sums autograd forms layer by layer (bit for bit when L + 1 is a power of
    two, as with the default 3 layers), holding two [N, d] arrays besides the gradient instead of one per pending
    layer; the forward pass holds two besides x (1.5 GB each at the Million Playlist Dataset's size). Nothing is
    saved for the backward pass but the adjacency."""

    @staticmethod
    def forward(ctx: Any, adj: Tensor, x: Tensor, layers: int) -> Tensor:
        ctx.adj, ctx.layers = adj, layers
        ctx.mark_dirty(x)
        layer = x
        for _ in range(layers):
            layer = adj @ layer  # the first product reads x before x starts to accumulate
            x += layer
        return x.div_(layers + 1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        share = 1.0 / (ctx.layers + 1)
        h = grad * share
        for _ in range(ctx.layers):
            h = (ctx.adj @ h).add_(grad, alpha=share)
        return None, h, None


class PooledDropout(nn.Dropout):
    """nn.Dropout, except that above pool_rows rows each row takes its mask from a pool of pool_rows random rows.

    CPU random numbers are slow: plain dropout over 500k tracks x 128 units was a sizeable part of every step at 10M
    pairs. Each unit is still dropped with probability p; rows that draw the same pool row share a mask. Up to
    pool_rows rows (the real data has 28k tracks) it is exactly nn.Dropout."""

    def __init__(self, p: float, pool_rows: int = 65_536) -> None:
        super().__init__(p)
        self.pool_rows = pool_rows

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0 or x.shape[0] <= self.pool_rows:
            return super().forward(x)
        keep = 1.0 - self.p
        pool = torch.empty(self.pool_rows, *x.shape[1:], dtype=x.dtype, device=x.device).bernoulli_(keep).div_(keep)
        return x * pool.index_select(0, torch.randint(0, self.pool_rows, (x.shape[0],), device=x.device))


# Tracks above which the training forward pass encodes tracks in chunks of this many (HybridGNN.encode_tracks): the
# real data (28k tracks) and the 10M-pair scale catalogue (500k) are encoded whole, exactly as before.
ENCODER_CHUNK_ROWS = 1 << 20


class HybridGNN(nn.Module):
    """LightGCN-style propagation over playlist, track, artist and album nodes, with feature-built track inputs.

    Tracks get their input from an MLP over audio features, year, popularity and genre, never from a free id
    embedding, so a track with no playlist edge still lands near the artist, album and sound it shares with
    others. Playlists, artists and albums have learnable embeddings; propagation is parameter-free (LGConv).
    """

    track_x: Tensor
    track_genre: Tensor
    unknown_genre: Tensor

    def __init__(self, inputs: GraphInputs, config: ModelConfig) -> None:
        super().__init__()
        d = config.embedding_dim
        self.num_playlists = inputs.num_playlists
        self.num_tracks = inputs.num_tracks
        self.playlist_emb = nn.Embedding(inputs.num_playlists, d)
        self.artist_emb = nn.Embedding(inputs.num_artists, d)
        self.album_emb = nn.Embedding(inputs.num_albums, d)
        for emb in (self.playlist_emb, self.artist_emb, self.album_emb):
            nn.init.normal_(emb.weight, std=0.1)
        self.track_encoder = nn.Sequential(
            nn.Linear(inputs.track_x.shape[1] + inputs.track_genre.shape[1], 2 * d),
            nn.ReLU(),
            PooledDropout(config.dropout),
            nn.Linear(2 * d, d),
        )
        self.convs = nn.ModuleList([LGConv(normalize=False) for _ in range(config.num_layers)])
        # The inputs' own tensors (nothing writes to them), not copies: 0.6 GB at the Million Playlist Dataset's size.
        self.register_buffer("track_x", inputs.track_x, persistent=False)
        self.register_buffer("track_genre", inputs.track_genre, persistent=False)
        unknown = torch.zeros(inputs.track_genre.shape[1])
        unknown[-1] = 1.0
        self.register_buffer("unknown_genre", unknown, persistent=False)

    def forward(
        self, edge_index: Tensor, edge_weight: Tensor | None, hide_genre: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Embed every node; return (playlist_z [P, d], track_z [T, d]). edge_index may be a sparse adjacency
        (then edge_weight is None). hide_genre [T] bool marks tracks whose
        genre the model must not see (training: tracks that are cold in this step)."""
        tracks = self.encode_tracks(hide_genre)
        x = torch.cat([self.playlist_emb.weight, tracks, self.artist_emb.weight, self.album_emb.weight])  # [N, d]
        del tracks  # x holds them; the cat keeps no reference for its backward
        p, t = self.num_playlists, self.num_tracks
        if edge_index.layout == torch.sparse_csr:
            out = _LightGCNStack.apply(edge_index, x, len(self.convs))
            return out[:p], out[p : p + t]
        out = x
        for conv in self.convs:
            x = conv(x, edge_index, edge_weight)
            out = out + x
        out = out / (len(self.convs) + 1)
        return out[:p], out[p : p + t]

    def encode_tracks(self, hide_genre: Tensor | None) -> Tensor:
        """[T, d] track inputs from the track encoder. Above ENCODER_CHUNK_ROWS tracks the encoder runs a chunk of
        tracks at a time, and while gradients are recorded under activation checkpointing: only its [T, d] output
        is kept for the backward pass, which recomputes each chunk's hidden layer (with the same dropout masks)
        rather than holding [T, 2d] activations for the whole catalogue (GBs at the Million Playlist Dataset's
        size)."""
        rows = self.num_tracks
        if rows <= ENCODER_CHUNK_ROWS:
            return self._encode(0, rows, hide_genre)
        chunks = [(lo, min(lo + ENCODER_CHUNK_ROWS, rows)) for lo in range(0, rows, ENCODER_CHUNK_ROWS)]
        if not torch.is_grad_enabled():
            return torch.cat([self._encode(lo, hi, hide_genre) for lo, hi in chunks])
        return torch.cat([checkpoint(self._encode, lo, hi, hide_genre, use_reentrant=False) for lo, hi in chunks])

    def _encode(self, lo: int, hi: int, hide_genre: Tensor | None) -> Tensor:
        """The track encoder over tracks lo:hi."""
        genre = self.track_genre[lo:hi]
        if hide_genre is not None:
            genre = torch.where(hide_genre[lo:hi].unsqueeze(1), self.unknown_genre, genre)
        return self.track_encoder(torch.cat([self.track_x[lo:hi], genre], dim=1))

    def input_embeddings(self) -> list[Tensor]:
        """Free embeddings, for the L2 penalty."""
        return [self.playlist_emb.weight, self.artist_emb.weight, self.album_emb.weight]


class DesignGCN(nn.Module):
    """The original design: two GCNConv layers (hidden then 64) over the playlist-track graph.

    Tracks carry their scaled audio features; playlists carry random features, fixed (the original) or learnable.
    """

    playlist_x: Tensor
    audio_x: Tensor

    def __init__(self, inputs: GraphInputs, config: ModelConfig, seed: int = 0) -> None:
        super().__init__()
        f = inputs.audio_x.shape[1]
        self.num_playlists = inputs.num_playlists
        self.num_tracks = inputs.num_tracks
        gen = torch.Generator().manual_seed(seed)
        random_features = torch.rand(inputs.num_playlists, f, generator=gen)  # [P, f], like the audio range
        if config.learn_playlist_embeddings:
            self.playlist_x = nn.Parameter(random_features)
        else:
            self.register_buffer("playlist_x", random_features, persistent=True)
        self.register_buffer("audio_x", inputs.audio_x.clone(), persistent=False)
        self.conv1 = GCNConv(f, config.hidden_dim, normalize=False)
        self.conv2 = GCNConv(config.hidden_dim, config.embedding_dim, normalize=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, edge_index: Tensor, edge_weight: Tensor | None, hide_genre: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Embed every node; return (playlist_z [P, d], track_z [T, d]). Genre is not an input here."""
        x = torch.cat([self.playlist_x, self.audio_x])  # [P + T, f]
        h = self.dropout(torch.relu(self.conv1(x, edge_index, edge_weight)))
        h = self.conv2(h, edge_index, edge_weight)
        p = self.num_playlists
        return h[:p], h[p : p + self.num_tracks]

    def input_embeddings(self) -> list[Tensor]:
        x = self.playlist_x
        return [x] if isinstance(x, nn.Parameter) else []


RecModel = HybridGNN | DesignGCN


def build_model(inputs: GraphInputs, config: ModelConfig, seed: int = 0) -> RecModel:
    """The model named by config.kind."""
    if config.kind == "hybrid":
        return HybridGNN(inputs, config)
    if config.kind == "design_gcn":
        return DesignGCN(inputs, config, seed=seed)
    raise ValueError(f"unknown model kind {config.kind!r}; expected 'hybrid' or 'design_gcn'")


def normalised_adjacency(edge_index: Tensor, num_nodes: int, self_loops: bool) -> tuple[Tensor, Tensor]:
    """Symmetric D^-1/2 A D^-1/2 weights for an undirected edge_index (computed once per graph, not per layer)."""
    ei, ew = gcn_norm(edge_index, None, num_nodes=num_nodes, add_self_loops=self_loops)
    assert ew is not None
    return ei, ew
