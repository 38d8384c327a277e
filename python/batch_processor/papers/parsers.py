"""Paper record parsers, registered in one place (``PARSERS``), chosen by content.

Every parser turns one decompressed object into *spool lines*: one JSON object per line,
written to a local file that DuckDB then reads (the staging model types, normalizes and
checks the fields in SQL). A spool line has the record fields

    id, title, abstract, authors [..], published, updated, categories [..],
    primary_category, doi, raw_xml, error

where ``id`` is the id as the source wrote it (``http://arxiv.org/abs/2401.12345v2``,
``arxiv:astro-ph/0601001``, ``2401.12345``) and ``error`` is set for an entry that is not a
paper (an arXiv API error entry). JSON lines input already has that shape and is copied
through untouched: its lines are checked in SQL, each with its line number.

Atom XML is parsed with defusedxml's ``iterparse``: no DTD entities, no external entities
(an entity bomb is refused, not expanded), one ``<entry>`` in memory at a time.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

ATOM = "http://www.w3.org/2005/Atom"
ARXIV = "http://arxiv.org/schemas/atom"
OPENSEARCH = "http://a9.com/-/spec/opensearch/1.1/"
for _prefix, _uri in (("", ATOM), ("arxiv", ARXIV), ("opensearch", OPENSEARCH)):
    ET.register_namespace(_prefix, _uri)


class ParseError(ValueError):
    """The object cannot be read as the format it claims (the whole object is rejected)."""


@dataclass
class ParseSummary:
    """What a parser saw in one object, besides the spool lines."""

    format: str
    lines: int = 0
    api_errors: int = 0  # entries that are arXiv API errors (an error feed)

    @property
    def empty_feed(self) -> bool:
        return self.lines == 0


Parser = Callable[[IO[bytes], IO[bytes]], ParseSummary]


def _text(element: ET.Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text


def _entry_record(entry: ET.Element) -> dict[str, Any]:
    title = _text(entry.find(f"{{{ATOM}}}title"))
    entry_id = _text(entry.find(f"{{{ATOM}}}id"))
    summary = _text(entry.find(f"{{{ATOM}}}summary"))
    primary = entry.find(f"{{{ARXIV}}}primary_category")
    record: dict[str, Any] = {
        "id": entry_id,
        "title": title,
        "abstract": summary,
        "authors": [
            name
            for author in entry.findall(f"{{{ATOM}}}author")
            if (name := _text(author.find(f"{{{ATOM}}}name"))) is not None
        ],
        "published": _text(entry.find(f"{{{ATOM}}}published")),
        "updated": _text(entry.find(f"{{{ATOM}}}updated")),
        "categories": [
            term
            for category in entry.findall(f"{{{ATOM}}}category")
            if (term := category.get("term")) is not None
        ],
        "primary_category": primary.get("term") if primary is not None else None,
        "doi": _text(entry.find(f"{{{ARXIV}}}doi")),
        "raw_xml": ET.tostring(entry, encoding="unicode").strip(),
        "error": None,
    }
    # The API serves its errors as an entry titled "Error" whose id is under /api/errors
    if (title or "").strip() == "Error" and "/api/errors" in (entry_id or ""):
        record["error"] = "arXiv API error: " + " ".join((summary or "no message").split())
    return record


def parse_atom(source: IO[bytes], spool: IO[bytes]) -> ParseSummary:
    summary = ParseSummary("atom")
    depth = 0
    root: ET.Element | None = None
    try:
        for event, element in iterparse(
            source, events=("start", "end"), forbid_dtd=False, forbid_entities=True
        ):
            if event == "start":
                depth += 1
                if depth == 1:
                    if element.tag != f"{{{ATOM}}}feed":
                        raise ParseError(f"not an Atom feed: the root element is <{element.tag}>")
                    root = element
                continue
            depth -= 1
            if element.tag == f"{{{ATOM}}}entry" and depth == 1:
                record = _entry_record(element)
                spool.write(json.dumps(record, ensure_ascii=False).encode())
                spool.write(b"\n")
                summary.lines += 1
                summary.api_errors += record["error"] is not None
                if root is not None:
                    root.remove(element)  # one entry in memory at a time
    except DefusedXmlException as error:
        raise ParseError(f"refused unsafe XML ({type(error).__name__}): {error}") from error
    except ET.ParseError as error:
        raise ParseError(f"not well-formed XML: {error}") from error
    return summary


def parse_jsonl(source: IO[bytes], spool: IO[bytes]) -> ParseSummary:
    """JSON lines are checked line by line in SQL; here they are only copied through."""
    summary = ParseSummary("jsonl")
    last = b"\n"
    for block in iter(lambda: source.read(1 << 20), b""):
        spool.write(block)
        summary.lines += block.count(b"\n")
        last = block[-1:]
    if last != b"\n":
        spool.write(b"\n")
        summary.lines += 1
    return summary


PARSERS: dict[str, Parser] = {"atom": parse_atom, "jsonl": parse_jsonl}


def detect_format(head: bytes) -> str:
    """The format of a decompressed object from its first bytes (at least one: an empty
    object is refused before)."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        return "jsonl"  # an empty object: no lines
    if stripped.startswith(b"<"):
        return "atom"
    if stripped.startswith(b"{"):
        return "jsonl"
    raise ParseError(
        f"unknown format: the object starts with {stripped[:20]!r} (expected Atom XML or "
        "JSON lines)"
    )
