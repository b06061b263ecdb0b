"""Approximate nearest-neighbour top-k over track embeddings for large catalogues (faiss IVF, the 'ann' extra).

Below AnnConfig.min_items the snapshot stays on exact brute force, so small catalogues (the real 28k tracks) rank
exactly as before. The index only proposes candidates; the snapshot rescores them exactly.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from recsys.errors import RecsysError

log = logging.getLogger(__name__)

# cached_left_out keeps the left-out rows of the last artists used in this many bytes: 2.26M tracks, ~290 KB each.
LEFT_OUT_CACHE_BYTES = 32 << 20
INDEX_KEY = "ann_index"  # the serialised index inside a snapshot's arrays.npz (bytes as uint8, not pickle)
PLAYLIST_INDEX_KEY = "playlist_ann_index"  # the same over playlist embeddings (similar songs' nearest playlists)
EXTRA_HINT = "pip install 'musicrec[ann]' (faiss-cpu)"


@dataclass(frozen=True)
class AnnConfig:
    """When and how to build the approximate index."""

    # Exact search over 200k x 64 float32 takes ~5-10 ms here; below that ANN saves little and costs recall.
    min_items: int = 200_000
    # IVF lists. Measured at 1M tracks (bench/bench_scale_serving.py embeddings, 48 candidates): 1024 lists need
    # nprobe 32 for recall@10 0.993 at 0.79 ms p50 / 1.08 ms p99; 4096 lists reach 0.969 at nprobe 64 in 0.48 / 0.63
    # ms, leaving room for the rescoring and result building inside the 2 ms p99 budget. Build: 1.5 s vs 12 s.
    nlist: int | None = None  # None: clip(round(4 * sqrt(n)), 16, 8192)
    # Lists scanned per query: the recall/latency knob. 64 of 4000 scans ~1.6% of the catalogue.
    nprobe: int = 64
    # How the index holds the vectors: "sq8" one byte per dimension (faiss IndexIVFScalarQuantizer), "flat" float32.
    # The index only proposes candidates, which are rescored exactly, so both reach the same recall; sq8 scans a
    # quarter of the bytes (a query is bound by reading its lists from memory) and holds a quarter of the memory.
    # sq8 is faiss's uniform 8-bit code, one range for every dimension (the vectors are unit vectors, whose dimensions
    # share [-1, 1]): its scan decodes faster than per-dimension ranges (QT_8bit) with the same answers.
    # `python bench/compare_serving.py 79b46ca --rebuild-index` (2.26M tracks, fastest of 3 runs per query): similar
    # songs p50 0.97 -> 0.94 ms, p99 1.79 -> 1.69 ms, recall@10 0.9602 both.
    storage: Literal["sq8", "flat"] = "sq8"
    # Whether one query's lists are scanned by all of faiss's OpenMP threads together (faiss parallel_mode 1) rather
    # than by one thread (mode 0 splits a batch of queries between threads; the served path asks one at a time).
    # Off: on 2 cores it lowers the median but raises the tail, since a query then waits for both cores (any other
    # busy thread holds one at times; the bot sets OMP_NUM_THREADS=1, so there faiss has one thread anyway).
    # Similar-songs p50 / p99 ms of 1,000 queries, bench/bench_scale_serving.py's bench_size run twice each way,
    # alternating (`--parallel-lists` turns it on): 100k tracks 0.74 / 2.32 and 0.71 / 4.58 together, 0.81 / 1.83
    # and 0.80 / 1.89 alone; 1M 0.98 / 5.40 and 0.87 / 4.21 together, 1.04 / 2.71 and 1.00 / 2.20 alone. Same
    # candidates either way.
    parallel_lists: bool = False
    # Vectors per list used to train the k-means quantiser (faiss warns below 39); 64 keeps the build ~5 s at 1M.
    train_per_list: int = 64
    seed: int = 0  # sample of training vectors; same snapshot -> same index

    def lists_for(self, n: int) -> int:
        return self.nlist or int(min(8192, max(16, round(4 * math.sqrt(n)))))


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise RecsysError(f"approximate search needs faiss: {EXTRA_HINT}") from exc
    return faiss


@dataclass(frozen=True, eq=False)
class Probe:
    """The lists nearest a query (AnnIndex.probe), nearest first, and the query's similarity to each list's centre."""

    lists: np.ndarray  # [m] int64
    similarity: np.ndarray  # [m] float32


@dataclass(frozen=True, eq=False)
class LeftOut:
    """Rows a search leaves out (AnnIndex.left_out): a bitmap of them, and how many of them each list holds."""

    bits: np.ndarray  # [ceil(n / 8)] uint8, faiss.IDSelectorBitmap's layout
    per_list: np.ndarray  # [nlist] int64


class AnnIndex:
    """An inner-product IVF index over L2-normalised vectors; search returns candidate row indices."""

    def __init__(self, index: Any, config: AnnConfig) -> None:
        self._index = index
        self._index.nprobe = config.nprobe
        self._index.parallel_mode = 1 if config.parallel_lists else 0
        self.config = config
        self._list_of, self._list_sizes = _lists_of(index)  # each row's list [n], each list's size [nlist]

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def _nprobe(self, breadth: float) -> int:
        return min(math.ceil(self.config.nprobe * max(1.0, breadth)), int(self._index.nlist))

    def scans_all(self, breadth: float) -> bool:
        """Whether a search of this breadth scans every list (then it returns all it can)."""
        return self._nprobe(breadth) >= int(self._index.nlist)

    def left_out(self, rows: np.ndarray) -> LeftOut:
        """Rows to leave out of searches, in the form a search reads them (build once, search many times)."""
        return LeftOut(_bitmap(rows, self.size), np.bincount(self._list_of[rows], minlength=len(self._list_sizes)))

    def probes(self, breadth: float) -> int:
        """How many lists a search of this breadth scans."""
        return self._nprobe(breadth)

    def probe(self, query: np.ndarray, breadth: float) -> Probe:
        """The lists a search of this breadth scans, nearest first: a narrower search scans the first of them."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        similarity, lists = self._index.quantizer.search(q, self._nprobe(breadth))
        found = lists[0] >= 0
        return Probe(lists[0][found], similarity[0][found])

    def skipped_share(self, lists: np.ndarray, skip: LeftOut) -> float:
        """The share of the vectors in these lists (a Probe's) that are skip rows: a search that skips them
        meets only the rest, so it needs 1 / (1 - share) times the lists to meet as many."""
        total = int(self._list_sizes[lists].sum())
        return float(skip.per_list[lists].sum()) / total if total else 0.0

    @property
    def list_of(self) -> np.ndarray:
        """The list holding each row. [n] int32"""
        return self._list_of

    @classmethod
    def build(cls, vectors: np.ndarray, config: AnnConfig | None = None) -> AnnIndex:
        """Train the coarse quantiser on a sample and add every vector. vectors: [n, d] float32."""
        config = config or AnnConfig()
        faiss = _faiss()
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = x.shape
        nlist = min(config.lists_for(n), n)
        quantizer = faiss.IndexFlatIP(d)
        if config.storage == "sq8":
            qt = faiss.ScalarQuantizer.QT_8bit_uniform
            index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, qt, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        sample_size = min(n, nlist * config.train_per_list)
        sample = x[np.sort(np.random.default_rng(config.seed).choice(n, sample_size, replace=False))]
        index.cp.seed = config.seed
        index.cp.min_points_per_centroid = 1  # the sample is deliberately small; silence faiss's warning
        index.train(sample)
        index.add(x)
        return cls(index, config)

    def search(
        self, query: np.ndarray, k: int, breadth: float = 1, skip: LeftOut | None = None, probe: Probe | None = None
    ) -> np.ndarray:
        """Row indices of up to k approximate nearest neighbours of one query vector [d], best first. breadth > 1
        scans that many times more lists (at most all): for lists that need many artists, not just the nearest
        tracks. skip: rows never returned (artists a list has enough of). probe: the query's probe of at least this
        breadth, when the caller has it (the search then reads its lists instead of finding them again). Per call,
        so concurrent searches do not share the settings."""
        k = min(k, self.size)
        nprobe = self._nprobe(breadth)
        faiss = _faiss()
        if skip is not None:
            # A bitmap of the skipped rows: one bit test per scanned vector (a hash set of them,
            # faiss.IDSelectorBatch, took milliseconds to build and probe for tens of thousands of rows).
            bits = skip.bits
            skipped = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))  # n: the bitmap's bytes
            outside = faiss.IDSelectorNot(skipped)  # holds pointers to skipped and bits: all live until it returns
            params = faiss.SearchParametersIVF(nprobe=nprobe, sel=outside)
        else:
            params = faiss.SearchParametersIVF(nprobe=nprobe)
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if probe is not None and len(probe.lists) >= nprobe:
            # faiss's Python wrapper of search_preassigned takes no parameters (the skip): its C++ method does.
            lists = np.ascontiguousarray(probe.lists[:nprobe], dtype=np.int64)
            similarity = np.ascontiguousarray(probe.similarity[:nprobe], dtype=np.float32)
            ids, dist = np.empty((1, k), dtype=np.int64), np.empty((1, k), dtype=np.float32)
            ptr = faiss.swig_ptr
            self._index.search_preassigned_c(
                1, ptr(q), k, ptr(lists), ptr(similarity), ptr(dist), ptr(ids), False, params
            )
        else:
            _, ids = self._index.search(q, k, params=params)
        found: np.ndarray = ids[0]
        return found[found >= 0]

    def to_array(self) -> np.ndarray:
        """The index as a uint8 array, to store in the snapshot's npz (no pickle)."""
        return np.asarray(_faiss().serialize_index(self._index), dtype=np.uint8)

    @classmethod
    def from_array(cls, data: np.ndarray, config: AnnConfig | None = None) -> AnnIndex:
        return cls(_faiss().deserialize_index(np.ascontiguousarray(data, dtype=np.uint8)), config or AnnConfig())


def cached_left_out(
    index: AnnIndex, rows_of: Callable[[np.ndarray], np.ndarray]
) -> Callable[[tuple[int, ...]], LeftOut]:
    """index.left_out(rows_of(groups)) per tuple of groups, the last ones used kept (LEFT_OUT_CACHE_BYTES): the queries
    that leave artists out are mostly of the few largest artists, whose bitmap and list counts take ~0.3 ms a query
    to build at 2.26M tracks."""
    entry = math.ceil(index.size / 8) + 8 * len(index._list_sizes)

    @functools.lru_cache(maxsize=max(1, LEFT_OUT_CACHE_BYTES // entry))
    def left_out(groups: tuple[int, ...]) -> LeftOut:
        return index.left_out(rows_of(np.array(groups, dtype=np.int64)))

    return left_out


def rows_in(rows: np.ndarray, row_lists: np.ndarray, lists: np.ndarray, limit: int) -> np.ndarray:
    """Those of rows (sorted by the list holding each, row_lists) that these lists (nearest first) hold, sorted: what a
    search scanning them meets of rows. Past limit rows, those of the nearest lists (the farthest list taken in part,
    its first rows). Binary searches per list: an artist can hold tens of thousands of rows."""
    lo, hi = np.searchsorted(row_lists, lists, "left"), np.searchsorted(row_lists, lists, "right")
    sizes = hi - lo
    ends = np.cumsum(sizes)
    taken = int(np.searchsorted(ends, limit)) + 1  # lists up to the one that reaches limit rows
    lo, sizes, ends = lo[:taken], sizes[:taken], ends[:taken]
    at = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(lo - (ends - sizes), sizes)  # [their rows]
    return np.sort(rows[at[:limit]])


def _lists_of(index: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each row's inverted list [n] int32 and each list's size [nlist] int64 (read from the index, not stored)."""
    faiss, lists = _faiss(), index.invlists
    sizes = np.array([lists.list_size(i) for i in range(index.nlist)], dtype=np.int64)
    list_of = np.zeros(int(index.ntotal), dtype=np.int32)
    for i in np.flatnonzero(sizes).tolist():
        list_of[faiss.rev_swig_ptr(lists.get_ids(i), int(sizes[i]))] = i
    return list_of, sizes


def _bitmap(rows: np.ndarray, n: int) -> np.ndarray:
    """rows (in 0..n-1) as a little-endian bitmap of n bits, faiss.IDSelectorBitmap's layout. [ceil(n / 8)] uint8"""
    if len(rows) < n // 256:  # few rows: set their bits (2.26M bits: ~0.01 ms for 100 rows, a mask ~0.15 ms)
        bits = np.zeros((n + 7) // 8, dtype=np.uint8)
        np.bitwise_or.at(bits, rows >> 3, np.left_shift(1, rows & 7).astype(np.uint8))
        return bits
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return np.packbits(mask, bitorder="little")


def index_for(vectors: np.ndarray, saved: np.ndarray | None, config: AnnConfig | None = None) -> AnnIndex | None:
    """The index a snapshot should use: None below the size threshold or without faiss (exact search, warned)."""
    config = config or AnnConfig()
    n = len(vectors)
    if n < config.min_items:
        return None
    try:
        if saved is not None:
            index = AnnIndex.from_array(saved, config)
            if index.size == n and index.dim == vectors.shape[1]:
                return index
            log.warning(
                "the saved ANN index holds %d x %d vectors, not %d x %d; rebuilding it",
                index.size,
                index.dim,
                n,
                vectors.shape[1],
            )
        return AnnIndex.build(vectors, config)
    except RecsysError as exc:
        log.warning("%d tracks would use approximate search, but %s; using exact search (slower)", n, exc)
        return None
