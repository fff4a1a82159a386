"""The LandingStore contract, held by both implementations: a local folder and GCS (fake-gcs-server)."""

import pytest

from leap_orchestration.stores import LocalLandingStore
from leap_orchestration.stores.base import FileChangedError
from leap_orchestration.stores.gcs import GcsLandingStore


@pytest.fixture(params=["local", "gcs"])
def store(request, tmp_path):
    if request.param == "local":
        store = LocalLandingStore(tmp_path / "landing")
        store.path("p/interval-data").mkdir(parents=True)
        return store
    client = request.getfixturevalue("gcs_client")
    return GcsLandingStore(client, request.getfixturevalue("landing_bucket"), [("p", "p/interval-data/")])


def spooled(store, tmp_path, data=b"data", name="u"):
    path = (store.spool_dir() if isinstance(store, LocalLandingStore) else tmp_path / "spool") / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_write_stat_read_list(store):
    assert store.stat("p/interval-data/a.csv") is None
    store.write_bytes("p/interval-data/a.csv", b"one")
    store.write_bytes("p/interval-data/sub/b.csv", b"two")
    obj = store.stat("p/interval-data/a.csv")
    assert (obj.key, obj.name, obj.size) == ("p/interval-data/a.csv", "a.csv", 3)
    assert store.read_bytes("p/interval-data/a.csv") == b"one"
    assert [o.name for o in store.list_files("p/interval-data/")] == ["a.csv"]  # not sub-folders
    folders, files = store.list_dir("p/interval-data/")
    assert folders == ["sub"] and [f.name for f in files] == ["a.csv"]
    store.write_bytes("p/interval-data/a.csv", b"changed")
    assert store.stat("p/interval-data/a.csv").version != obj.version
    assert store.list_tenant_inboxes() == [("p", "p/interval-data/")]


def test_publish_is_whole_complete_and_never_clobbers(store, tmp_path):
    obj = store.publish("p/interval-data/a.csv", spooled(store, tmp_path))
    assert obj.complete and store.stat("p/interval-data/a.csv").complete
    other = spooled(store, tmp_path, b"other", "v")
    with pytest.raises(FileExistsError):
        store.publish("p/interval-data/a.csv", other)
    assert store.read_bytes("p/interval-data/a.csv") == b"data"


def test_move_checks_the_version_and_never_clobbers(store):
    store.write_bytes("p/interval-data/a.csv", b"a")
    version = store.stat("p/interval-data/a.csv").version
    store.write_bytes("p/interval-data/a.csv", b"a2")
    with pytest.raises(FileChangedError):
        store.move("p/interval-data/a.csv", "p/interval-data/accepted/a.csv/a.csv", expected_version=version)
    store.move(
        "p/interval-data/a.csv",
        "p/interval-data/accepted/a.csv/a.csv",
        expected_version=store.stat("p/interval-data/a.csv").version,
    )
    assert store.stat("p/interval-data/a.csv") is None
    assert store.read_bytes("p/interval-data/accepted/a.csv/a.csv") == b"a2"
    store.write_bytes("p/interval-data/a.csv", b"again")
    with pytest.raises(FileExistsError):
        store.move("p/interval-data/a.csv", "p/interval-data/accepted/a.csv/a.csv")
    assert store.read_bytes("p/interval-data/accepted/a.csv/a.csv") == b"a2"
    store.delete("p/interval-data/a.csv")
    store.delete("p/interval-data/a.csv")  # idempotent
    assert store.stat("p/interval-data/a.csv") is None


@pytest.mark.parametrize("key", ["../x", "p/../../x", "/etc/passwd", "p/./x", "p\\x"])
def test_unsafe_keys_are_refused(store, key):
    with pytest.raises(ValueError):
        store.stat(key)
