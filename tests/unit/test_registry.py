import json
import multiprocessing

import pytest

from converters.registry import INFO_FILE, RegistryError, register

ENTRY = {"file_name": "a.jsonl", "formatting": "alpaca"}


def read(tmp_path):
    return json.loads((tmp_path / INFO_FILE).read_text())


def test_merge_keeps_other_entries(tmp_path):
    (tmp_path / INFO_FILE).write_text(json.dumps({"theirs": {"file_name": "t.json"}}))
    register(tmp_path, {"ours": ENTRY})
    assert read(tmp_path) == {"theirs": {"file_name": "t.json"}, "ours": ENTRY}


def test_same_entry_again_is_fine_a_different_one_needs_force(tmp_path):
    register(tmp_path, {"ours": ENTRY})
    register(tmp_path, {"ours": ENTRY})
    other = {**ENTRY, "formatting": "sharegpt"}
    with pytest.raises(RegistryError, match="different entry for ours.*--force"):
        register(tmp_path, {"ours": other})
    assert read(tmp_path) == {"ours": ENTRY}
    register(tmp_path, {"ours": other}, force=True)
    assert read(tmp_path) == {"ours": other}


def test_malformed_registry_is_named_and_left_alone(tmp_path):
    (tmp_path / INFO_FILE).write_text('{"a": {"file_name": "x"},\n  oops}')
    with pytest.raises(RegistryError, match=r"not valid JSON line 2 column 3.*nothing was changed"):
        register(tmp_path, {"ours": ENTRY})
    assert (tmp_path / INFO_FILE).read_text() == '{"a": {"file_name": "x"},\n  oops}'


def test_a_crash_before_the_rename_leaves_the_old_file_whole(tmp_path):
    register(tmp_path, {"ours": ENTRY})
    before = (tmp_path / INFO_FILE).read_bytes()

    def crash():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        register(tmp_path, {"new": ENTRY}, before_write=crash)
    assert (tmp_path / INFO_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{INFO_FILE}.lock", INFO_FILE]


def _register_many(args):
    folder, worker = args
    for i in range(25):
        register(folder, {f"w{worker}_{i}": {"file_name": f"{worker}_{i}.jsonl"}})


def test_concurrent_registrations_lose_nothing(tmp_path):
    # spawned, not forked: a fork of a process with threads (pytest-xdist's worker has
    # execnet's) can copy a lock another thread holds, and the child then waits forever
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_register_many, [(tmp_path, w) for w in range(4)])
    assert len(read(tmp_path)) == 100


def test_file_keeps_a_readable_mode(tmp_path):
    register(tmp_path, {"ours": ENTRY})
    assert (tmp_path / INFO_FILE).stat().st_mode & 0o044 == 0o044
