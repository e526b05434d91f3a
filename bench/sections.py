"""The sections of docs/performance.md that a part of the bench can rewrite
alone (`python -m bench audit`, `... enumeration`, `... import`): each lies
between its own begin and end markers."""

from __future__ import annotations

from pathlib import Path


def replace(markdown: Path, begin: str, end: str, block: str) -> None:
    """Put `block` (which starts with `begin` and ends with `end`) in place of
    the section between those markers, or at the end of the file if it has none."""
    text = markdown.read_text() if markdown.exists() else ""
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    markdown.write_text(text)
