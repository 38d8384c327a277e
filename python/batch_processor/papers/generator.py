"""``batch-processor papers generate``: a gzipped Atom feed of generated arXiv-like entries
(deterministic for a seed), for the benchmark and for trying the pipeline without S3 data.
A share of the entries repeat an earlier paper with a higher version (dedup keeps those)."""

from __future__ import annotations

import gzip
import random
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

VOCABULARY_SIZE = 4000  # pseudo-words: abstracts compress about as well as real text
_CATEGORIES = ("cs.LG", "cs.AI", "cond-mat.str-el", "quant-ph", "hep-th", "math.PR", "astro-ph")


@dataclass(frozen=True)
class GeneratedFeed:
    path: Path
    entries: int
    papers: int


def _vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randint(3, 10))) for _ in range(VOCABULARY_SIZE)]


def _entry(rng: random.Random, words_of: list[str], number: int, version: int) -> str:
    words = rng.choices(words_of, k=rng.randint(90, 160))
    title = " ".join(rng.choices(words_of, k=8)).capitalize()
    year, month = 2015 + number % 10, 1 + number % 12
    paper = f"{year % 100:02d}{month:02d}.{number % 100000:05d}"
    categories = rng.sample(_CATEGORIES, k=2)
    authors = "".join(
        f"<author><name>{escape(rng.choice(words_of).title())} {chr(65 + i)}.</name></author>"
        for i in range(rng.randint(1, 5))
    )
    return (
        f"<entry><id>http://arxiv.org/abs/{paper}v{version}</id>"
        f"<updated>{year}-{month:02d}-{10 + version:02d}T12:00:00Z</updated>"
        f"<published>{year}-{month:02d}-10T12:00:00Z</published>"
        f"<title>{escape(title)}</title><summary>{escape(' '.join(words))}</summary>{authors}"
        + "".join(f'<category term="{c}"/>' for c in categories)
        + f'<arxiv:primary_category term="{categories[0]}"/></entry>\n'
    )


def generate_papers_feed(
    path: Path, *, entries: int, seed: int = 1, revised_fraction: float = 0.05
) -> GeneratedFeed:
    """Write ``entries`` Atom entries to the gzip file ``path``, streaming."""
    rng = random.Random(seed)  # noqa: S311  (demo data, not cryptography)
    vocabulary = _vocabulary(rng)
    revised = int(entries * revised_fraction)
    papers = entries - revised
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as out:
        out.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
            'xmlns:arxiv="http://arxiv.org/schemas/atom">\n'
        )
        for number in range(papers):
            out.write(_entry(rng, vocabulary, number, 1))
        for number in range(revised):
            out.write(_entry(rng, vocabulary, number, 2))
        out.write("</feed>\n")
    return GeneratedFeed(path, entries, papers)
