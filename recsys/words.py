"""The words of playlist names and text queries: one tokenizer for the word index, the queries and the BM25 baseline,
decade words, and the mood words every snapshot knows (recsys.text uses them)."""

from __future__ import annotations

import re

from recsys.explain import REASON_FEATURES
from recsys.names import fold

# Function words of the names' languages (English, Spanish, Portuguese, Italian): they name no music. Frequent
# music words ("hits", "best", "music") stay: their low IDF already weighs them down, and a query may be only them.
_STOP = "a an and are as at be by for from in into is it its me my of on or our so the this that to with you your"
STOP_WORDS = frozenset(f"{_STOP} de del do da e el en la las le lo los mi o para por que su un una y".split(" "))
# "90 s" (fold splits "90's") is "90s"; "r b", "r n b" and "r and b" (R&B, R'n'B) are "rnb", as some names write it.
_DECADE_GAP = re.compile(r"\b(\d*0) s\b")
_RNB = re.compile(r"\br (?:n |and )?b\b")
_DECADE = re.compile(r"^(19|20)?(\d)0s$")
_DECADE_WORDS = {"sixties": 1960, "seventies": 1970, "eighties": 1980, "nineties": 1990}
# Mood words a playlist name rarely holds, as directions over the audio columns recsys.explain.REASON_FEATURES, in
# standard deviations. Hand-written, not learned: the valence (sad-happy) by energy (calm-excited) plane of mood
# research, plus danceability, acoustic sound and tempo.


def _mood(**along: float) -> tuple[float, ...]:
    return tuple(along.get(feature, 0.0) for feature in REASON_FEATURES)


_CALM = _mood(energy=-1.0, acousticness=0.5, tempo=-0.5)
_SAD = _mood(energy=-0.5, valence=-1.0, acousticness=0.5)
_HAPPY = _mood(danceability=0.5, energy=0.5, valence=1.0)
_ACTIVE = _mood(danceability=0.5, energy=1.0, acousticness=-0.5, tempo=0.5)
MOODS: dict[str, tuple[float, ...]] = {
    **dict.fromkeys(("chill", "calm", "relax", "relaxing", "mellow"), _CALM),
    **dict.fromkeys(("study", "focus"), _mood(energy=-1.0, acousticness=0.5)),
    "sleep": _mood(danceability=-0.5, energy=-1.0, acousticness=1.0, tempo=-0.5),
    "acoustic": _mood(energy=-0.5, acousticness=1.0),
    **dict.fromkeys(("sad", "melancholy", "rainy"), _SAD),
    **dict.fromkeys(("happy", "sunny", "upbeat"), _HAPPY),
    **dict.fromkeys(("energetic", "hype", "gym", "workout", "running"), _ACTIVE),
    "angry": _mood(energy=1.0, valence=-1.0, acousticness=-0.5),
    "party": _mood(danceability=1.0, energy=0.5, valence=0.5, acousticness=-0.5),
    "dance": _mood(danceability=1.0, energy=0.5),
}
# Offered when no word of a query is known (those the snapshot knows); the index's most common words fill up.
SUGGESTIONS = ("workout", "party", "chill", "rock", "latin", "edm", "hip hop", "90s")


def tokens(text: str) -> list[str]:
    """The words of a playlist name or a query: folded (recsys.names.fold), "90's" -> "90s", "R&B" -> "rnb", stop
    words and single characters dropped. One rule for the index, the queries and the BM25 baseline."""
    folded = _RNB.sub("rnb", _DECADE_GAP.sub(r"\1s", fold(text)))
    return [w for w in folded.split() if len(w) > 1 and w not in STOP_WORDS]


def decade(word: str) -> tuple[int, int] | None:
    """The years a decade word names ("90s", "1990s", "nineties" -> (1990, 1999)); None for other words. Two digits
    below 30 are this century's ("10s" -> 2010s)."""
    if word in _DECADE_WORDS:
        start = _DECADE_WORDS[word]
        return start, start + 9
    found = _DECADE.match(word)
    if not found:
        return None
    digit = int(found.group(2))
    century = int(found.group(1)) * 100 if found.group(1) else (2000 if digit < 3 else 1900)
    return century + 10 * digit, century + 10 * digit + 9
