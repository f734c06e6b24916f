"""Top functions of a `py-spy record --format raw` profile (collapsed stacks).

Each line is `frame;frame;...;leaf count`, frames as `function (file:line)`.
Self time goes to the leaf; total time to every distinct function on the stack.
Time inside a C extension (protobuf, chdb) is counted in the Python function
that called it, since py-spy records Python frames only.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


@dataclass(frozen=True)
class Profile:
    samples: int
    self_counts: list[tuple[str, int]]
    total_counts: list[tuple[str, int]]


def _function(frame: str) -> str:
    # "Batcher._write (ingest/batcher.py:168)" -> "Batcher._write (ingest/batcher.py)"
    frame = _LINE.sub(")", frame.strip())
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


def summarise(path: Path, top: int = 15) -> Profile:
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_function(f) for f in stack.split(";") if f]
        if frames:
            self_counts[frames[-1]] += n
        for function in set(frames):
            total_counts[function] += n
    return Profile(samples, self_counts.most_common(top), total_counts.most_common(top))


def render(profile: Profile, title: str) -> str:
    if not profile.samples:
        return f"{title}: no samples\n"
    lines = [f"{title}: {profile.samples} samples of busy threads"]
    for heading, counts in (("self (leaf frame)", profile.self_counts), ("total (on the stack)", profile.total_counts)):
        lines.append(f"  {heading}:")
        lines.extend(f"    {100 * n / profile.samples:5.1f}%  {name}" for name, n in counts)
    return "\n".join(lines) + "\n"
