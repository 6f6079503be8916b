"""Reading a CSV file as lines of text: its encoding, and bounded lines.

Encoding: a byte-order mark decides (UTF-8, UTF-16 LE/BE, UTF-32); without
one the file must be UTF-8. A file that is not gets an error naming its first
undecodable line and suggesting `--encoding` (Latin-1 and Windows-1252 files
from Excel and European tools are the usual case). An explicit encoding
overrides detection.

Lines are read at most `MAX_LINE` characters at a time, so a file without
line breaks (a binary file, a one-line dump) cannot fill memory: the rest of
such a line is skipped and its number is kept in `overlong`, for the caller
to report as a bad row.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from marketdata.providers.base import InvalidRequestError
from marketdata.providers.csv_parse import CsvFormatError

MAX_LINE = 1 << 20  # characters
# Longest marks first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_HINT = (
    "pass --encoding with the file's encoding (e.g. --encoding latin-1, or "
    "--encoding cp1252 for files saved by Excel on Windows)"
)


def encoding_checked(name: str) -> str:
    try:
        codecs.lookup(name)
    except LookupError:
        raise InvalidRequestError(
            f"unknown encoding {name!r}; use a name such as utf-8, latin-1, "
            "cp1252 or utf-16"
        ) from None
    return name


def _detected(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {path}: {exc.strerror}") from None
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    return "utf-8-sig"  # also reads plain UTF-8


class TextLines:
    """Physical lines of `path`: iterate once (e.g. through `csv.reader`);
    `number` is the count read so far. Use as a context manager."""

    def __init__(self, path: Path, *, encoding: str | None = None) -> None:
        self.path = path
        self.explicit = encoding is not None
        self.encoding = encoding or _detected(path)
        self.number = 0
        self.overlong: set[int] = set()
        self._handle: TextIO | None = None

    @property
    def label(self) -> str:
        if self.encoding.lower().replace("_", "-") in ("utf-8", "utf-8-sig", "utf8"):
            return "UTF-8"
        return self.encoding

    def __enter__(self) -> TextLines:
        try:
            self._handle = self.path.open(newline="", encoding=self.encoding)
        except OSError as exc:
            raise InvalidRequestError(
                f"cannot read {self.path}: {exc.strerror}"
            ) from None
        return self

    def __exit__(self, *exc_info) -> None:
        if self._handle is not None:
            self._handle.close()

    def __iter__(self) -> Iterator[str]:
        assert self._handle is not None, "use TextLines as a context manager"
        readline = self._handle.readline
        try:
            while line := readline(MAX_LINE):
                self.number += 1
                if _cut(line):
                    self.overlong.add(self.number)
                    while _cut(readline(MAX_LINE)):
                        pass
                yield line
        except UnicodeDecodeError as exc:
            raise self._undecodable(exc) from None

    def _undecodable(self, exc: UnicodeDecodeError) -> CsvFormatError:
        line = self._first_undecodable_line()
        bad = exc.object[exc.start : exc.start + 1].hex().upper() or "?"
        message = f"{self.path}: line {line} is not valid {self.label} (byte 0x{bad})"
        if self.explicit:
            return CsvFormatError(f"{message}; is --encoding right?")
        return CsvFormatError(f"{message}; {_HINT}")

    def _first_undecodable_line(self) -> int:
        """Decoding in chunks fails ahead of the lines handed out, so the
        line is found again from the bytes, on this error path only."""
        decoder = codecs.getincrementaldecoder(self.encoding)()
        line = 1
        with self.path.open("rb") as handle:
            while chunk := handle.read(1 << 16):
                state = decoder.getstate()
                try:
                    line += _breaks(decoder.decode(chunk))
                    continue
                except UnicodeDecodeError:
                    decoder.setstate(state)
                for i in range(len(chunk)):
                    try:
                        line += _breaks(decoder.decode(chunk[i : i + 1]))
                    except UnicodeDecodeError:
                        return line
        return line


def _cut(line: str) -> bool:
    """Whether `readline(MAX_LINE)` stopped at the limit, mid-line."""
    return len(line) == MAX_LINE and line[-1] not in "\r\n"


def _breaks(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")
