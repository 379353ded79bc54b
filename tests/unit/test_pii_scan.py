"""The PII scan finds sensitive values in every file of a warehouse, decoded or not (no JVM).

Files are built here as Delta, Spark and RocksDB write them: Parquet data and checkpoints with
pyarrow, commits as JSON lines, state store snapshots as zip archives, Spark state files as
lz4-java block streams.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from pathlib import Path

import lz4.block
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import InputError
from pipeline.privacy.pii_scan import Finding, Needle, ScanResult, scan_tree

EMAIL = "ana.souza@example.com"
NAME = "José Müller"
IP = "203.0.113.7"
USER_ID = "u-4821"
HMAC_EMAIL = hashlib.sha256(EMAIL.encode()).hexdigest()
NEEDLES = (
    Needle("email", EMAIL),
    Needle("name", NAME),
    Needle("ip", IP),
    Needle("user_id", USER_ID),
    Needle("hmac(email)", HMAC_EMAIL),
)
LZ4_HEADER = struct.Struct("<8sBiii")


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)


def _parquet(table: pa.Table, **options: object) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def _lz4_stream(*contents: bytes, compressed: bool = True) -> bytes:
    """An lz4-java block stream: one block per content, then the empty end block."""
    blocks = []
    for content in contents:
        body = lz4.block.compress(content, store_size=False) if compressed else content
        token = (0x20 if compressed else 0x10) | 4  # method | compression level
        blocks.append(LZ4_HEADER.pack(b"LZ4Block", token, len(body), len(content), 0) + body)
    return b"".join(blocks) + LZ4_HEADER.pack(b"LZ4Block", 0x10, 0, 0, 0)


def _zip(members: dict[str, bytes]) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return sink.getvalue()


def _found(result: ScanResult, path: str) -> set[tuple[str, str]]:
    return {(found.label, found.where) for found in result.findings if found.path == path}


def _events_table() -> pa.Table:
    """Silver-like rows: a nested `user` struct, a list and a map of strings."""
    return pa.table(
        {
            "event_id": ["e1", "e2"],
            "user": pa.array(
                [{"email": EMAIL, "country": "BR"}, {"email": "o@example.com", "country": "PT"}],
                pa.struct([("email", pa.string()), ("country", pa.string())]),
            ),
            "ips": pa.array([[IP, "198.51.100.1"], []], pa.list_(pa.string())),
            "props": pa.array(
                [[("uid", USER_ID)], [("uid", "u-1")]], pa.map_(pa.string(), pa.string())
            ),
            "digest": pa.array([HMAC_EMAIL.encode(), b"\x00"], pa.binary()),
        }
    )


def test_finds_values_in_nested_parquet_columns(tmp_path: Path) -> None:
    _write(tmp_path / "silver/events/part-00000.snappy.parquet", _parquet(_events_table()))

    result = scan_tree(tmp_path, NEEDLES)

    columns = {
        (label, where)
        for label, where in _found(result, "silver/events/part-00000.snappy.parquet")
        if where.startswith("parquet column")
    }
    assert columns == {
        ("email", "parquet column user.email"),
        ("ip", "parquet column ips.element"),
        ("user_id", "parquet column props.value"),
        ("hmac(email)", "parquet column digest"),
    }
    assert result.by_kind == {"parquet": 1}
    assert result.unreadable == ()


def test_finds_values_inside_long_strings_escaped_or_not(tmp_path: Path) -> None:
    lines = [
        json.dumps({"user": {"name": NAME}}, ensure_ascii=False),
        json.dumps({"user": {"name": "Ana"}, "ip": IP}),  # `ensure_ascii`: no escape needed
        json.dumps({"note": f"renamed from {NAME}"}),  # escaped: "Jos\u00e9 M\u00fcller"
    ]
    for index, line in enumerate(lines):
        table = pa.table({"raw": pa.array([line], pa.large_string())})
        _write(tmp_path / f"bronze/part-{index}.parquet", _parquet(table, write_statistics=False))

    result = scan_tree(tmp_path, NEEDLES)

    assert {(f.path, f.label, f.where) for f in result.findings if "column" in f.where} == {
        ("bronze/part-0.parquet", "name", "parquet column raw"),
        ("bronze/part-1.parquet", "ip", "parquet column raw"),
        ("bronze/part-2.parquet", "name", "parquet column raw"),
    }


def test_reports_min_max_statistics_in_the_parquet_footer(tmp_path: Path) -> None:
    table = pa.table({"email": [EMAIL, "zz@example.com"]})
    _write(tmp_path / "t/stats.parquet", _parquet(table, compression="gzip", use_dictionary=False))
    _write(
        tmp_path / "t/no-stats.parquet",
        _parquet(table, compression="gzip", use_dictionary=False, write_statistics=False),
    )

    result = scan_tree(tmp_path, NEEDLES)

    assert ("email", "parquet footer bytes") in _found(result, "t/stats.parquet")
    assert _found(result, "t/no-stats.parquet") == {("email", "parquet column email")}


def test_finds_emails_in_delta_log_statistics(tmp_path: Path) -> None:
    stats = json.dumps({"numRecords": 2, "minValues": {"user": {"email": EMAIL}}})
    add = {"add": {"path": "part-00000.parquet", "size": 1, "dataChange": True, "stats": stats}}
    _write(tmp_path / "silver/_delta_log/00000000000000000000.json", json.dumps(add) + "\n")
    checkpoint = pa.table({"add": pa.array([{"path": "part-00000.parquet", "stats": stats}])})
    _write(
        tmp_path / "silver/_delta_log/00000000000000000010.checkpoint.parquet",
        _parquet(checkpoint, compression="gzip"),
    )

    result = scan_tree(tmp_path, NEEDLES)

    assert _found(result, "silver/_delta_log/00000000000000000000.json") == {("email", "text")}
    checkpoint_found = _found(result, "silver/_delta_log/00000000000000000010.checkpoint.parquet")
    assert ("email", "parquet column add.stats") in checkpoint_found


def test_finds_json_escaped_values_in_text_files(tmp_path: Path) -> None:
    _write(tmp_path / "_checkpoints/bronze/offsets/3", 'v1\n{"name":"Jos\\u00e9 M\\u00fcller"}\n')

    result = scan_tree(tmp_path, NEEDLES)

    assert result.findings == (Finding("_checkpoints/bronze/offsets/3", "name", "text"),)


def test_reports_each_value_once_per_file_and_place(tmp_path: Path) -> None:
    _write(tmp_path / "a.txt", f"{EMAIL} {EMAIL}\n{EMAIL}")
    _write(tmp_path / "b.txt", "nothing to see")

    result = scan_tree(tmp_path, NEEDLES)

    assert result.findings == (Finding("a.txt", "email", "text"),)
    assert result.files == 2
    assert result.by_kind == {"text": 2}


def test_searches_zip_members_by_their_content(tmp_path: Path) -> None:
    sst = b"\x00\x01rocksdb\xff" + USER_ID.encode() + b"\x00" * 8
    rows = _parquet(pa.table({"email": [EMAIL]}), compression="gzip", write_statistics=False)
    archive = _zip(
        {
            "000123.sst": sst,
            "CURRENT": b"MANIFEST-000001\n",
            "nested/rows.parquet": rows,
        }
    )
    _write(tmp_path / "_checkpoints/gold/state/0/0/2.zip", archive)

    result = scan_tree(tmp_path, NEEDLES)

    assert _found(result, "_checkpoints/gold/state/0/0/2.zip") == {
        ("user_id", "zip member 000123.sst"),
        ("email", "zip member nested/rows.parquet: parquet column email"),
    }
    assert result.by_kind == {"zip": 1}


def test_decodes_spark_lz4_block_streams(tmp_path: Path) -> None:
    repeated = "ab" * 20  # compresses to a few literals and a match: not in the raw bytes
    state = b"\x00\x00\x00\x10" + (repeated * 10).encode() + b"\xff" + HMAC_EMAIL.encode()
    _write(tmp_path / "_checkpoints/s/state/0/1/1.delta", _lz4_stream(state, b"\x00" + state))
    _write(tmp_path / "_checkpoints/s/state/0/1/2.delta", _lz4_stream(state, compressed=False))

    result = scan_tree(tmp_path, (*NEEDLES, Needle("pattern", repeated)))

    compressed = _found(result, "_checkpoints/s/state/0/1/1.delta")
    assert ("pattern", "lz4 block stream") in compressed
    assert ("pattern", "lz4 raw bytes") not in compressed
    assert ("hmac(email)", "lz4 block stream") in compressed
    assert _found(result, "_checkpoints/s/state/0/1/2.delta") == {
        ("pattern", "lz4 block stream"),
        ("pattern", "lz4 raw bytes"),
        ("hmac(email)", "lz4 block stream"),
        ("hmac(email)", "lz4 raw bytes"),
    }
    assert result.by_kind == {"lz4": 2}
    assert result.unreadable == ()


def test_lists_files_that_cannot_be_decoded(tmp_path: Path) -> None:
    _write(tmp_path / "bad.parquet", b"PAR1" + EMAIL.encode() + b"\x00\x00\x00\x00PAR1")
    _write(tmp_path / "bad.delta", _lz4_stream(b"state")[:-3])
    _write(tmp_path / "ok.txt", "fine")

    result = scan_tree(tmp_path, NEEDLES)

    assert result.unreadable == ("bad.delta", "bad.parquet")
    assert _found(result, "bad.parquet") == {("email", "parquet page bytes")}
    assert result.files == 3


def test_walks_hidden_files_but_not_linked_directories(tmp_path: Path) -> None:
    _write(tmp_path / "outside/secret.txt", EMAIL)
    _write(tmp_path / "root/.hidden/.part-0.parquet.crc", b"\xff\xfe" + IP.encode())
    _write(tmp_path / "root/_delta_log/.00000000000000000000.json.crc", "{}")
    (tmp_path / "root/link").symlink_to(tmp_path / "outside", target_is_directory=True)

    result = scan_tree(tmp_path / "root", NEEDLES)

    assert result.findings == (Finding(".hidden/.part-0.parquet.crc", "ip", "binary"),)
    assert result.by_kind == {"binary": 1, "text": 1}


def test_summary_names_labels_never_values(tmp_path: Path) -> None:
    _write(tmp_path / "a.json", json.dumps({"email": EMAIL, "name": NAME, "h": HMAC_EMAIL}))

    summary = scan_tree(tmp_path, NEEDLES).to_json()

    text = json.dumps(summary, ensure_ascii=False)
    assert all(needle.value not in text for needle in NEEDLES)
    assert summary["findings"] == [
        {"path": "a.json", "label": "email", "where": "text"},
        {"path": "a.json", "label": "hmac(email)", "where": "text"},
        {"path": "a.json", "label": "name", "where": "text"},
    ]
    assert EMAIL not in repr(NEEDLES)


def test_rejects_an_empty_value() -> None:
    with pytest.raises(InputError):
        scan_tree(Path(), [Needle("email", "")])
