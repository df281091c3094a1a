"""The processes a command started, read from /proc: what must be gone once it stopped."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid`, with its command line."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                found[child] = (
                    (Path("/proc") / str(child) / "cmdline")
                    .read_bytes()
                    .replace(b"\0", b" ")
                    .decode(errors="replace")
                )
            except OSError:
                continue
            todo.append(child)
    return found


def alive(pid: int, cmdline: str) -> bool:
    try:
        now = (
            (Path("/proc") / str(pid) / "cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode(errors="replace")
        )
    except OSError:
        return False
    return now == cmdline  # the same pid with another command line is a new process


def sandbox_token(log_text: str, user: str) -> str:
    """A bearer token for `user` from the sandbox's local issuer, whose command the banner shows
    (the sandbox believes no X-User-Id header)."""
    import re
    import shlex
    import subprocess

    found = re.search(r"([^\s=(]+ -m watchtower\.sandbox\.issuer \S+) me\b", log_text)
    assert found, log_text
    done = subprocess.run(
        [*shlex.split(found.group(1)), user], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()
