"""Talking to BIRD 2: `birdc -v` answers parsed by their reply codes, `bird -p -c` to check
a config, and `birdc configure` judged by what it says (it exits 0 on a refused config).

A verbose answer is lines `CCCC-text` (more follows), `CCCC text` (the last of that code)
and `     text` (continues the code before). 0xxx are results, 1xxx table rows, 2xxx table
headings, 8xxx run-time errors, 9xxx parse errors (BIRD's doc/reply_codes)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path

# `configure` results that mean BIRD now runs the new config.
RECONFIGURED_CODES = {3: "Reconfigured", 4: "Reconfiguration in progress"}
_CODE_LINE = re.compile(r"^(\d{4})([ -])(.*)$")


class BirdUnavailable(RuntimeError):
    """BIRD cannot be asked: not installed, not running, or not answering in time."""


@dataclass(frozen=True)
class Reply:
    """A birdc answer: (code, text) per line, continuations carrying their code."""

    lines: tuple[tuple[int, str], ...]

    def texts(self, code: int) -> list[str]:
        return [text for c, text in self.lines if c == code]

    @property
    def errors(self) -> list[str]:
        return [text for c, text in self.lines if c >= 8000]


def parse_reply(text: str) -> Reply:
    lines: list[tuple[int, str]] = []
    code = 0
    for raw in text.splitlines():
        m = _CODE_LINE.match(raw)
        if m is not None:
            code = int(m[1])
            lines.append((code, m[3]))
        elif raw.startswith(" ") and code:  # birdc -v pads continuations to the code's width
            lines.append((code, raw[5:] if raw.startswith("     ") else raw[1:]))
        elif raw.strip():
            lines.append((9999, raw.strip()))  # not BIRD's: birdc's own complaint
    return Reply(tuple(lines))


@dataclass(frozen=True)
class ConfigureResult:
    ok: bool
    message: str


def configure_result(reply: Reply) -> ConfigureResult:
    """Only `0003 Reconfigured` and `0004 Reconfiguration in progress` are a success;
    anything else (an 8002 parse error, a missing file, an empty answer) is a refusal."""
    for code, text in reply.lines:
        expected = RECONFIGURED_CODES.get(code)
        if expected is not None and text.startswith(expected):
            return ConfigureResult(True, text)
    why = reply.errors or [text for c, text in reply.lines if c not in (1, 2)]
    return ConfigureResult(False, "; ".join(why) or "no answer from birdc")


@dataclass
class BirdProtocol:
    """One row of `show protocols all`, with what its details say of a BGP session."""

    name: str
    proto: str
    table: str
    state: str
    since: str
    info: str
    bgp_state: str | None = None
    neighbor_address: str | None = None
    neighbor_as: int | None = None
    routes_imported: int = 0
    routes_exported: int = 0
    details: list[str] = field(default_factory=list, repr=False)

    @property
    def established(self) -> bool:
        return self.proto == "BGP" and self.state == "up" and self.info.startswith("Established")


_ROUTES = re.compile(r"Routes:\s+(\d+) imported, (?:(\d+) filtered, )?(\d+) exported")


def parse_protocols(reply: Reply) -> list[BirdProtocol]:
    """The protocols of `show protocols` or `show protocols all` (details: code 1006)."""
    out: list[BirdProtocol] = []
    for code, text in reply.lines:
        if code == 1002:
            parts = text.split(None, 5)
            if len(parts) < 5:
                continue
            name, proto, table, state, since = parts[:5]
            out.append(
                BirdProtocol(
                    name, proto, table, state, since, parts[5].strip() if len(parts) > 5 else ""
                )
            )
        elif code == 1006 and out:
            _detail(out[-1], text.strip())
    return out


def _detail(p: BirdProtocol, line: str) -> None:
    if not line:
        return
    p.details.append(line)
    key, _, value = line.partition(":")
    value = value.strip()
    if key == "BGP state":
        p.bgp_state = value
    elif key == "Neighbor address":
        p.neighbor_address = value
    elif key == "Neighbor AS" and value.isdigit():
        p.neighbor_as = int(value)
    else:
        m = _ROUTES.match(line)
        if m is not None:
            p.routes_imported += int(m[1])
            p.routes_exported += int(m[3])


def parse_routes(reply: Reply) -> list[str]:
    """The prefixes of `show route ...` (table rows, code 1007; `Table x:` skipped)."""
    out = []
    for code, text in reply.lines:
        if code != 1007 or not text or text[0].isspace() or text.startswith("Table "):
            continue
        out.append(text.split()[0])
    return out


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


class Bird:
    """The commands: `bird` checks a config, `birdc` asks the daemon over its socket."""

    def __init__(self, bird: str, birdc: str, socket: Path, timeout: float) -> None:
        self.bird = bird
        self.birdc = birdc
        self.socket = socket
        self.timeout = timeout

    async def _run(self, *argv: str) -> tuple[int, str, str]:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            raise BirdUnavailable(f"{argv[0]}: not installed (Debian: apt install bird2)") from None
        except PermissionError:
            raise BirdUnavailable(f"{argv[0]}: not executable") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise BirdUnavailable(f"{argv[0]}: no answer within {self.timeout:g} s") from None
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    async def check_config(self, path: Path) -> CheckResult:
        """`bird -p -c PATH`: parses the config (and what it includes) without running it."""
        rc, out, err = await self._run(self.bird, "-p", "-c", str(path))
        text = (err or out).strip()
        if rc == 0:
            return CheckResult(True, "")
        return CheckResult(False, text.removeprefix("bird: ") or f"bird -p exited {rc}")

    async def ask(self, *command: str) -> Reply:
        """One birdc command; BirdUnavailable when the daemon cannot be reached."""
        rc, out, err = await self._run(self.birdc, "-v", "-s", str(self.socket), *command)
        reply = parse_reply(out)
        if not any(code == 1 for code, _ in reply.lines):  # no `0001 BIRD x ready.`
            text = (err or out).strip() or f"birdc exited {rc}"
            raise BirdUnavailable(text)
        return reply

    async def configure(self) -> ConfigureResult:
        return configure_result(await self.ask("configure"))

    async def protocols(self) -> list[BirdProtocol]:
        return parse_protocols(await self.ask("show", "protocols", "all"))
