"""Find sensitive values in every file under a directory, in plain Python (no JVM).

The core of `clickstream verify-erasure`: after a person's data is erased, no file under the
warehouse may still hold their e-mail, name, IP, user id or keyed hashes, whether the Delta log
still references the file or not. So every file is read, hidden ones included, and searched:

* as raw bytes, for each value in UTF-8 and, when it differs, JSON-escaped (`"Jos\\u00e9"`);
* Parquet files (`PAR1` at both ends) also decoded, every string and binary leaf column searched
  for the values as substrings (Delta `stats` strings, raw JSON lines);
* zip archives (RocksDB state store snapshots) member by member, each by the same rules;
* Spark's LZ4 block streams (lz4-java `LZ4BlockOutputStream`) decompressed, then searched.

Many keyed hashes at once (a key rotation's old pseudonyms, thousands of them) are searched
as `hex_tokens`: every 64-digit hex run in the raw bytes, and every whole value of a decoded
string column, looked up in a set, so the cost does not grow with their number.

A file that claims a format it cannot be decoded in is listed in `ScanResult.unreadable`, so the
caller can fail the verification rather than trust a partial search. Needle values are never
reported, only their labels.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lz4.block
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import InputError

__all__ = ["TOKEN_LABEL", "Finding", "Needle", "ScanResult", "scan_tree"]

_PARQUET_MAGIC = b"PAR1"
_LZ4_MAGIC = b"LZ4Block"
# Block header: magic, token (method | level), compressed, decompressed length, checksum.
_LZ4_HEADER = struct.Struct("<8sBiii")
_LZ4_RAW = 0x10
_LZ4_COMPRESSED = 0x20
_SEARCHED_TYPES = (
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_binary,
    pa.types.is_large_binary,
)
_LIST_TYPES = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
# Kinds whose raw-bytes match needs no description inside a zip member or an LZ4 stream.
_PLAIN_KINDS = ("text", "binary")
_HEX_TOKEN = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
TOKEN_LABEL = "keyed hash"
"""The label of the findings of `hex_tokens`."""


@dataclass(frozen=True)
class Needle:
    """A sensitive value to look for; `label` names it in reports, `value` is never printed."""

    label: str
    value: str = field(repr=False)


@dataclass(frozen=True)
class Finding:
    """One file holding one needle: path relative to the root, and how it was found."""

    path: str
    label: str
    where: str


@dataclass(frozen=True)
class ScanResult:
    """What `scan_tree` read and found.

    `unreadable` lists the files that could not be read, or not wholly decoded (a Parquet,
    zip archive or LZ4 stream that is corrupt); their raw bytes were still searched if read.
    """

    files: int
    bytes_read: int
    by_kind: Mapping[str, int]
    findings: tuple[Finding, ...]
    unreadable: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        """A JSON-ready summary, with labels only (never the searched values)."""
        return {
            "files": self.files,
            "bytes_read": self.bytes_read,
            "by_kind": dict(sorted(self.by_kind.items())),
            "unreadable": list(self.unreadable),
            "findings": [
                {"path": found.path, "label": found.label, "where": found.where}
                for found in self.findings
            ],
        }


class _UnreadableError(Exception):
    """Raised when a file's content claims a format it cannot be decoded in."""


@dataclass(frozen=True)
class _Pattern:
    """A needle's label with the encodings of its value to search for."""

    label: str
    texts: tuple[str, ...]

    @property
    def raw(self) -> tuple[bytes, ...]:
        """The encodings as UTF-8 bytes, to search raw file content."""
        return tuple(text.encode() for text in self.texts)


def _pattern(needle: Needle) -> _Pattern:
    """The UTF-8 text of a needle and, when it differs, its JSON-escaped form."""
    if not needle.value:
        raise InputError(f"needle {needle.label!r} has an empty value; give the value to find")
    escaped = json.dumps(needle.value)[1:-1]
    texts = (needle.value,) if escaped == needle.value else (needle.value, escaped)
    return _Pattern(needle.label, texts)


def _kind(data: bytes) -> str:
    """The format of a file's content: parquet, lz4, zip, text or binary."""
    if len(data) >= 8 and data.startswith(_PARQUET_MAGIC) and data.endswith(_PARQUET_MAGIC):
        return "parquet"
    if data.startswith(_LZ4_MAGIC):
        return "lz4"
    if zipfile.is_zipfile(io.BytesIO(data)):
        return "zip"
    try:
        data.decode()
    except UnicodeDecodeError:
        return "binary"
    return "text"


def _raw_where(data: bytes, kind: str, needle: bytes) -> Iterator[str]:
    """How a needle appears in raw bytes; in Parquet, whether in the pages or the footer."""
    if kind in _PLAIN_KINDS:
        yield kind
    elif kind == "parquet":
        footer_start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
        if data.find(needle) < footer_start:
            yield "parquet page bytes"
        if data.rfind(needle) >= footer_start:
            yield "parquet footer bytes"
    else:
        yield f"{kind} raw bytes"


def _leaves(name: str, array: pa.Array) -> Iterator[tuple[str, pa.Array]]:
    """The string and binary leaves of a column, through structs, lists, maps, dictionaries."""
    kind = array.type
    if pa.types.is_struct(kind):
        for index in range(kind.num_fields):
            yield from _leaves(f"{name}.{kind.field(index).name}", array.field(index))
    elif pa.types.is_map(kind):
        yield from _leaves(f"{name}.{kind.key_field.name}", array.keys)
        yield from _leaves(f"{name}.{kind.item_field.name}", array.items)
    elif any(is_kind(kind) for is_kind in _LIST_TYPES):
        yield from _leaves(f"{name}.{kind.value_field.name}", array.values)
    elif pa.types.is_dictionary(kind):
        yield from _leaves(name, array.dictionary)
    elif any(is_kind(kind) for is_kind in _SEARCHED_TYPES):
        yield name, array


def _parquet_hits(
    data: bytes, patterns: Sequence[_Pattern], tokens: pa.Array | None
) -> set[tuple[str, str]]:
    """(label, where) of needles found in the decoded string and binary columns of a Parquet."""
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as error:
        raise _UnreadableError(str(error)) from error
    leaves = [
        leaf
        for name, column in zip(table.column_names, table.columns, strict=True)
        for chunk in column.chunks
        for leaf in _leaves(name, chunk)
    ]
    hits = {
        (pattern.label, f"parquet column {path}")
        for path, values in leaves
        for pattern in patterns
        if any(_contains(values, text) for text in pattern.texts)
    }
    if tokens is not None:
        hits |= {
            (TOKEN_LABEL, f"parquet column {path}")
            for path, values in leaves
            if _is_string(values) and pc.any(pc.is_in(values, value_set=tokens)).as_py()
        }
    return hits


def _is_string(values: pa.Array) -> bool:
    return bool(pa.types.is_string(values.type) or pa.types.is_large_string(values.type))


def _contains(values: pa.Array, text: str) -> bool:
    """Whether any string or binary value holds the text."""
    return pc.any(pc.match_substring(values, text)).as_py() is True


def _lz4_stream(data: bytes) -> bytes:
    """The content of an lz4-java block stream; its checksums are not verified."""
    parts: list[bytes] = []
    position = 0
    while position < len(data):
        if position + _LZ4_HEADER.size > len(data):
            raise _UnreadableError("LZ4 block header cut short")
        magic, token, compressed, size, _checksum = _LZ4_HEADER.unpack_from(data, position)
        position += _LZ4_HEADER.size
        block = data[position : position + compressed]
        position += compressed
        if magic != _LZ4_MAGIC or compressed < 0 or size < 0 or len(block) != compressed:
            raise _UnreadableError("not an LZ4 block")
        method = token & 0xF0
        if method == _LZ4_COMPRESSED:
            try:
                content: bytes = lz4.block.decompress(block, uncompressed_size=size)
            except (lz4.block.LZ4BlockError, ValueError) as error:
                raise _UnreadableError(str(error)) from error
        elif method == _LZ4_RAW:
            content = block
        else:
            raise _UnreadableError(f"unknown LZ4 block method {method:#x}")
        if len(content) != size:
            raise _UnreadableError("LZ4 block length differs from its header")
        parts.append(content)
    return b"".join(parts)


def _zip_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    """The name and content of each file in a zip archive."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.infolist():
                if not member.is_dir():
                    yield member.filename, archive.read(member)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError) as error:
        raise _UnreadableError(str(error)) from error


def _nested(prefix: str, kind: str, where: str) -> str:
    """Where a needle was found inside a container: its plain bytes need no more detail."""
    return prefix if kind in _PLAIN_KINDS else f"{prefix}: {where}"


def _contents(data: bytes, kind: str) -> Iterator[tuple[str, bytes]]:
    """The contents held inside a zip archive or an LZ4 stream, each with where it was."""
    if kind == "zip":
        for name, member in _zip_members(data):
            yield f"zip member {name}", member
    elif kind == "lz4":
        yield "lz4 block stream", _lz4_stream(data)


@dataclass(frozen=True)
class _Scan:
    """Some content's kind, the (label, where) of each needle in it, and if it all decoded."""

    kind: str
    hits: frozenset[tuple[str, str]]
    decoded: bool


def _scan_bytes(
    data: bytes, patterns: Sequence[_Pattern], tokens: frozenset[str] = frozenset()
) -> _Scan:
    """Search some content as raw bytes, then decoded by its kind, recursively."""
    kind = _kind(data)
    hits = {
        (pattern.label, where)
        for pattern in patterns
        for needle in pattern.raw
        if needle in data
        for where in _raw_where(data, kind, needle)
    }
    if tokens:
        hits |= {
            (TOKEN_LABEL, where)
            for token in {m.decode() for m in _HEX_TOKEN.findall(data)} & tokens
            for where in _raw_where(data, kind, token.encode())
        }
    decoded = True
    try:
        if kind == "parquet":
            token_array = pa.array(sorted(tokens), pa.string()) if tokens else None
            hits |= _parquet_hits(data, patterns, token_array)
        for prefix, content in _contents(data, kind):
            inner = _scan_bytes(content, patterns, tokens)
            hits |= {(label, _nested(prefix, inner.kind, where)) for label, where in inner.hits}
            decoded = decoded and inner.decoded
    except _UnreadableError:
        decoded = False
    return _Scan(kind, frozenset(hits), decoded)


def _files(root: Path) -> Iterator[Path]:
    """Every file under root, hidden ones included, in a stable order; not into linked dirs."""

    def fail(error: OSError) -> None:
        raise error

    for directory, subdirectories, names in os.walk(root, onerror=fail):
        subdirectories.sort()
        for name in sorted(names):
            yield Path(directory) / name


def scan_tree(
    root: Path, needles: Sequence[Needle], *, hex_tokens: frozenset[str] = frozenset()
) -> ScanResult:
    """Search every file under `root` for every needle.

    Args:
        root: the directory to scan (a Delta warehouse, a checkpoint location).
        needles: the values to find, with the labels to report them under.
        hex_tokens: lowercase 64-digit hex values (keyed hashes) to find in bulk, reported
            under `TOKEN_LABEL`: in raw bytes as whole hex runs, in decoded string columns
            as whole values.

    Returns:
        Files and bytes read, files per kind, each (path, label, where) found once, and the
        files that could not be read or decoded.

    Raises:
        InputError: when a needle's value is empty (it would match every file).
        OSError: when a directory under `root` cannot be listed.
    """
    patterns = [_pattern(needle) for needle in needles]
    by_kind: dict[str, int] = {}
    findings: set[Finding] = set()
    unreadable: list[str] = []
    files = bytes_read = 0
    for file in _files(root):
        path = file.relative_to(root).as_posix()
        try:
            data = file.read_bytes()
        except OSError:  # a broken link, a file without read permission
            unreadable.append(path)
            continue
        scan = _scan_bytes(data, patterns, hex_tokens)
        if not scan.decoded:
            unreadable.append(path)
        files += 1
        bytes_read += len(data)
        by_kind[scan.kind] = by_kind.get(scan.kind, 0) + 1
        findings |= {Finding(path, label, where) for label, where in scan.hits}
    return ScanResult(
        files=files,
        bytes_read=bytes_read,
        by_kind=by_kind,
        findings=tuple(sorted(findings, key=lambda found: (found.path, found.label, found.where))),
        unreadable=tuple(unreadable),
    )
