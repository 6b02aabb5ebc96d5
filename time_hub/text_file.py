"""Reading a text input file: UTF-8 (a leading byte-order mark dropped), or one error naming the file and line.

Every reader of user data (CoNLL-U, IOB2, SQuAD JSON, recipes) decodes through here, so a binary or mis-encoded file
is refused the same way everywhere: `ValueError("path:line: not UTF-8 text ...")`, which the CLI prints as one line.
"""

from __future__ import annotations

from pathlib import Path


def read_text(path: str | Path) -> str:
    """A UTF-8 text file (a leading byte-order mark dropped); undecodable bytes are an error naming `path:line`."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start})") from None


def excerpt(value: object, limit: int = 80) -> str:
    """`repr(value)` for an error line, cut to `limit` characters (a 1 MB line must not become a 1 MB message)."""
    text = repr(value)
    return text[:limit] + ("..." if len(text) > limit else "")
