"""The local landing store: atomic publish, completeness marks, and keys that must not escape."""

import pytest

from leap_orchestration.stores import LocalLandingStore


@pytest.fixture
def store(tmp_path):
    return LocalLandingStore(tmp_path / "landing")


def spooled(store, data=b"data", name="u"):
    path = store.spool_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_publish_is_complete_never_clobbers_and_the_mark_follows_the_file(store):
    obj = store.publish("p/interval-data/a.csv", spooled(store))
    assert obj.complete and store.stat("p/interval-data/a.csv").complete
    assert [o.complete for o in store.list_files("p/interval-data/")] == [True]
    second = spooled(store, b"other", "v")
    with pytest.raises(FileExistsError):
        store.publish("p/interval-data/a.csv", second)
    assert store.read_bytes("p/interval-data/a.csv") == b"data" and second.exists()
    store.move("p/interval-data/a.csv", "p/interval-data/accepted/a.csv/a.csv")
    store.write_bytes("p/interval-data/a.csv", b"dropped by other means")
    assert not store.stat("p/interval-data/a.csv").complete  # a new file under the old name is not marked


def test_list_dir_and_hidden_roots(store):
    store.publish("p/interval-data/a.csv", spooled(store))
    store.write_bytes("p/interval-data/failed/b.csv/b.csv", b"b")
    folders, files = store.list_dir("p/interval-data/")
    assert folders == ["failed"] and [f.name for f in files] == ["a.csv"]
    assert store.list_tenant_inboxes() == [("p", "p/interval-data/")]  # .spool and .published are not tenants


@pytest.mark.parametrize("key", ["../x", "p/../../x", "/etc/passwd", "p/./x", "p\\x", "p/\x00"])
def test_unsafe_keys_are_refused(store, key):
    with pytest.raises(ValueError):
        store.path(key)


def test_keys_through_links_are_refused(store, tmp_path):
    (store.root / "a").mkdir(parents=True)
    (store.root / "b").mkdir()
    (store.root / "b" / "secret.csv").write_text("s")
    (store.root / "a" / "to-b").symlink_to(store.root / "b")
    (store.root / "a" / "file.csv").symlink_to(store.root / "b" / "secret.csv")
    for key in ["a/to-b/secret.csv", "a/file.csv"]:
        with pytest.raises(ValueError):
            store.open_read(key)
    assert store.list_files("a/") == [] and store.list_dir("a/") == ([], [])
