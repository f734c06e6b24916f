"""Bearer keys: digests only, files re-read when they change, verdicts per kind."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from app.auth import KeyRing, Verdict, check


def sha(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def test_keys_may_be_given_as_their_digests():
    ring = KeyRing(["plain-key", sha("hashed-key")])
    assert "plain-key" in ring and "hashed-key" in ring
    assert sha("hashed-key") not in ring, "the digest itself is not a key"
    assert "other" not in ring and len(ring) == 2


def test_a_malformed_digest_entry_is_refused():
    with pytest.raises(ValueError, match="64 hex digits"):
        KeyRing(["sha256:abc"])


def test_a_key_file_is_read_again_when_it_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(KeyRing, "FILE_CHECK_SECONDS", 0.0)
    path = tmp_path / "keys"
    path.write_text("# rotated monthly\nold-key\n\n")
    ring = KeyRing(file=str(path))
    assert "old-key" in ring and "new-key" not in ring
    path.write_text(f"old-key\n{sha('new-key')}\n")  # both active while clients move over
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert "new-key" in ring and "old-key" in ring
    path.write_text("new-key\n")
    os.utime(path, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
    assert "old-key" not in ring and "new-key" in ring


def test_a_broken_key_file_keeps_the_keys_read_before(tmp_path, monkeypatch):
    monkeypatch.setattr(KeyRing, "FILE_CHECK_SECONDS", 0.0)
    path = tmp_path / "keys"
    path.write_text("good-key\n")
    ring = KeyRing(file=str(path))
    path.write_text("sha256:not-hex\n")
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert "good-key" in ring
    path.unlink()
    assert "good-key" in ring


def test_a_missing_key_file_is_an_error_at_start(tmp_path):
    with pytest.raises(ValueError, match="cannot read the key file"):
        KeyRing(file=str(tmp_path / "absent"))


@pytest.mark.parametrize(
    ("header", "verdict"),
    [
        (None, Verdict.MISSING),
        ("Basic abc", Verdict.MISSING),
        ("Bearer ", Verdict.MISSING),
        ("Bearer nope", Verdict.UNKNOWN),
        ("Bearer ingest", Verdict.WRONG_KIND),
        ("Bearer analytics", Verdict.GRANTED),
        ("bearer   analytics  ", Verdict.GRANTED),
    ],
)
def test_verdicts(header, verdict):
    assert check(header, KeyRing(["analytics"]), KeyRing(["ingest"])) == verdict
    assert check(header, KeyRing(), KeyRing(["ingest"])) == Verdict.OPEN
