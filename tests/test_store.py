"""The file store (DESIGN section 6): versions that only grow, a history of every
version, atomic writes, optimistic concurrency, hand edits recorded as versions, a watch
that sees each new version, and the apply status a node writes back."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from dplb.store import ApplyStatus, FieldError, FileStore, VersionConflict, VersionNotFound


def config(n: int) -> dict[str, Any]:
    return {"node": {"name": "lb1"}, "services": [{"vip": "10.0.100.10", "port": n}]}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_empty_store_reads_none(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "desired.yaml")
    assert run(store.read()) is None
    assert run(store.current_version()) == 0
    assert run(store.history()) == []


def test_versions_grow_and_history_keeps_each(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "desired.yaml")
    for n in (80, 81, 82):
        run(store.write(config(n), author="ops", message=f"port {n}"))
    current = run(store.read())
    assert current.version == 3
    assert current.data == config(82)
    assert [(v.version, v.author, v.message) for v in run(store.history())] == [
        (3, "ops", "port 82"),
        (2, "ops", "port 81"),
        (1, "ops", "port 80"),
    ]
    assert run(store.read_version(1)).data == config(80)
    with pytest.raises(VersionNotFound):
        run(store.read_version(4))


def test_the_file_is_plain_yaml_readable_by_people(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "desired.yaml")
    run(store.write(config(80), author="ops"))
    text = (tmp_path / "desired.yaml").read_text()
    assert "vip: 10.0.100.10" in text
    assert (tmp_path / "history" / "1.yaml").read_text() == text


def test_files_are_owner_only_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "desired.yaml")
    run(store.write(config(80), author="ops"))
    for path in (tmp_path / "desired.yaml", tmp_path / "history" / "1.yaml"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    leftovers = [p.name for p in tmp_path.rglob("*.tmp")]
    assert leftovers == []


def test_write_with_a_stale_expected_version_is_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "desired.yaml")
    run(store.write(config(80), author="a", expected_version=0))
    run(store.write(config(81), author="b", expected_version=1))
    with pytest.raises(VersionConflict) as exc:
        run(store.write(config(82), author="c", expected_version=1))
    assert (exc.value.expected, exc.value.current) == (1, 2)
    assert run(store.read()).data == config(81)


def test_a_hand_edit_becomes_the_next_version(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "desired.yaml")
    run(store.write(config(80), author="ops"))
    (tmp_path / "desired.yaml").write_text("node: {name: lb1}\nservices: []\n")
    current = run(store.read())
    assert current.version == 2
    assert current.info.author == "file"
    assert current.data == {"node": {"name": "lb1"}, "services": []}
    # Read again: the same version, not another one.
    assert run(store.read()).version == 2


def test_a_file_that_is_not_yaml_is_kept_with_the_reason(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "desired.yaml")
    run(store.write(config(80), author="ops"))
    (tmp_path / "desired.yaml").write_text("node: [unclosed\n")
    current = run(store.read())
    assert current.version == 2
    assert current.data is None
    assert "not valid YAML" in current.problem
    assert run(store.read_version(1)).data == config(80)


def test_a_removed_file_is_put_back_from_history(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "desired.yaml")
    run(store.write(config(80), author="ops"))
    (tmp_path / "desired.yaml").unlink()
    assert run(store.read()).data == config(80)
    assert (tmp_path / "desired.yaml").exists()


def test_a_second_store_on_the_same_file_sees_the_same_versions(tmp_path: Path) -> None:
    one = FileStore(tmp_path / "desired.yaml")
    two = FileStore(tmp_path / "desired.yaml")
    run(one.write(config(80), author="a"))
    run(two.write(config(81), author="b", expected_version=1))
    assert run(one.read()).version == 2
    with pytest.raises(VersionConflict):
        run(one.write(config(82), author="a", expected_version=1))


def test_watch_yields_each_new_version(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "desired.yaml", poll_interval=5)

    async def scenario() -> list[int]:
        seen: list[int] = []

        async def watcher() -> None:
            async for desired in store.watch(after=0):
                seen.append(desired.version)
                if desired.version == 2:
                    return

        task = asyncio.create_task(watcher())
        await store.write(config(80), author="ops")
        while not seen:
            await asyncio.sleep(0.01)
        await store.write(config(81), author="ops")
        # The store wakes its watchers at once: well within the 5 s poll interval.
        await asyncio.wait_for(task, 2)
        return seen

    assert run(scenario()) == [1, 2]


def test_watch_sees_a_hand_edit_by_polling(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "desired.yaml", poll_interval=0.02)
    run(store.write(config(80), author="ops"))

    async def scenario() -> Any:
        watch = store.watch(after=1)
        (tmp_path / "desired.yaml").write_text("node: {name: lb1}\n")
        return await asyncio.wait_for(anext(watch), 5)

    desired = run(scenario())
    assert (desired.version, desired.info.author) == (2, "file")


def test_keep_prunes_old_versions_but_versions_still_grow(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "desired.yaml", keep=2)
    for n in range(80, 85):
        run(store.write(config(n), author="ops"))
    assert [v.version for v in run(store.history())] == [5, 4]
    run(store.write(config(90), author="ops"))
    assert run(store.read()).version == 6


def test_apply_status_is_written_per_node(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "desired.yaml")
    assert run(store.read_status("lb1")) is None
    status = ApplyStatus(
        node="lb1",
        applied_version=3,
        last_version=4,
        last_result="refused",
        errors=[FieldError(path="services[0].port", reason="bad")],
    )
    run(store.write_status(status))
    assert run(store.read_status("lb1")) == status
    assert run(store.read_status("lb2")) is None


def test_the_yaml_written_reads_back_as_the_same_data() -> None:
    from dplb.store import dump_yaml, load_yaml

    tricky = {
        "plain": ["lb1", "10.0.2.11", "10.0.0.0/8", "net_af_xdp0,iface=lb1-p0"],
        "quoted": ["yes", "No", "null", "~", "10:20", "0x1F", "1e3", "08", "1_000", "", " x"],
        "more": ["a: b", "- x", "#x", "2001:db8::1", "2001:db8::/64", "é", "2024-01-01", "@x"],
        "numbers": [0, -1, 1.5, 65535],
        "other": {"none": None, "true": True, "false": False, "empty": [], "map": {}},
        "nested": [[1, 2], [], {}, {"k": [{"x": [1]}]}],
    }
    text = dump_yaml(tricky)
    assert load_yaml(text) == tricky
    assert "- 10.0.2.11\n" in text  # addresses stay readable
